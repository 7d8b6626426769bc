import ArgumentParser
import Parley

@main
struct ParleyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "BEAM-style processes for Swift, on a scheduler of their own.",
        subcommands: [Tour.self, Bench.self, NodeCommand.self],
        defaultSubcommand: Tour.self
    )
}

/// Options every subcommand shares.
struct RuntimeOptions: ParsableArguments {
    @Option(name: .long, help: "Scheduler threads (like erl +S); default: one per core.")
    var schedulers: Int?

    func apply() throws {
        if let schedulers {
            try Scheduler.configure(.init(schedulers: schedulers))
        }
    }
}
