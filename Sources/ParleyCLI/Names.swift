import Parley

// This module imports Foundation (and, through ParleyDistribution, NIO) beside Parley: these
// two lines make `Process` and `Channel` mean Parley's in every file of it. Module-level
// declarations win over imported ones; Foundation's and NIO's stay reachable as
// `Foundation.Process` and `NIOCore.Channel`.
typealias Process = Parley.Process
typealias Channel = Parley.Channel
