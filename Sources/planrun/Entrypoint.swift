import PlanRunCLI

await PlanRunCommand.main()
