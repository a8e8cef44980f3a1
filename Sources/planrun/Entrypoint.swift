import PlanRunCLI

// Top-level `await PlanRunCommand.main()` resolves to ArgumentParser's
// synchronous `main()`, which refuses an asynchronous root command at run
// time; `runAsRoot()` is the asynchronous entry.
await PlanRunCommand.runAsRoot()
