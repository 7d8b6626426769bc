import ArgumentParser
import Parley

@main
struct ParleyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "BEAM-style processes for Swift, on a scheduler of their own.",
        subcommands: [Tour.self, Bench.self, NodeCommand.self, ObserverCommand.self, Demo.self],
        defaultSubcommand: Tour.self
    )
}

/// Options every subcommand shares.
struct RuntimeOptions: ParsableArguments {
    @Option(name: .long, help: "Scheduler threads (like erl +S); default: one per core.")
    var schedulers: Int?

    @Flag(name: .long, help: "Make Parley's schedulers Swift's global executor (Scheduler.unsafeTryInstallAsGlobalExecutor(): opt-in, unsupported runtime hook; processes then need no task-executor preference).")
    var globalExecutor = false

    func apply() throws {
        if globalExecutor && !Scheduler.unsafeTryInstallAsGlobalExecutor() {
            throw ValidationErrorText("--global-executor: Swift's global executor hook is not available (or already taken)")
        }
        if let schedulers {
            try Scheduler.configure(.init(schedulers: schedulers))
        }
    }
}
