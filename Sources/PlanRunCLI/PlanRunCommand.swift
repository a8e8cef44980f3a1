import ArgumentParser
import PlanRunCore

public struct PlanRunCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "planrun")
    public init() {}
}
