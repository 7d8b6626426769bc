import ParleyRuntime

/// A mix input's flags for ``Mix/toggle(_:)`` (core.async's `:solo`, `:mute` and `:pause`).
/// A flag left `nil` keeps the input's current setting, as core.async merges a toggle's
/// state map into the current one.
///
/// ```swift
/// mixer.toggle([drums: MixState(solo: true), bass: MixState(mute: true, pause: false)])
/// ```
public struct MixState: Sendable, Hashable {
    /// Soloed inputs are the only ones that reach the output while any input is soloed;
    /// their mute and pause flags are then ignored (with one exception, see ``Mix``).
    ///
    /// ```swift
    /// mixer.toggle([lead: MixState(solo: true)])
    /// ```
    public var solo: Bool?
    /// A muted input is still consumed, but its values are dropped.
    ///
    /// ```swift
    /// mixer.toggle([noise: MixState(mute: true)])
    /// ```
    public var mute: Bool?
    /// A paused input is not consumed at all.
    ///
    /// ```swift
    /// mixer.toggle([backlog: MixState(pause: true)])
    /// ```
    public var pause: Bool?

    /// Flags to set; `nil` leaves a flag as it is.
    ///
    /// ```swift
    /// let unmute = MixState(mute: false)
    /// ```
    public init(solo: Bool? = nil, mute: Bool? = nil, pause: Bool? = nil) {
        self.solo = solo
        self.mute = mute
        self.pause = pause
    }
}

/// What a ``Mix`` does with the inputs that are not soloed while some input is
/// (core.async's `solo-mode`).
///
/// ```swift
/// mixer.soloMode = .pause    // while something is soloed, leave the others unread
/// ```
public enum SoloMode: Sendable, Hashable {
    /// They are consumed and their values dropped (the default).
    case mute
    /// They are not consumed.
    case pause
}

/// Puts the values of several input channels onto one output channel, with per-input
/// solo, mute and pause flags (core.async's `mix`). Make one with ``mix(_:)``; add inputs
/// with ``admit(_:)`` (core.async's `admix`) or ``toggle(_:)``, remove them with
/// ``unmix(_:)`` and ``unmixAll()``.
///
/// A `go` block takes from whichever readable input is ready (in random order) and sends the
/// value to the output, waiting until the output takes it. Which inputs are read and which
/// values are passed on, as in core.async:
/// - with no soloed input: every input that is not paused is read, and the values of the
///   ones that are not muted are passed on;
/// - with soloed inputs and ``SoloMode/mute``: every input that is not paused is read, and
///   only the soloed ones' values are passed on (a soloed input's mute flag is ignored;
///   its pause flag is not: core.async's implementation leaves a soloed, paused input
///   unread in this mode);
/// - with soloed inputs and ``SoloMode/pause``: only the soloed inputs are read, and all
///   their values are passed on.
///
/// A change (admit, unmix, toggle, solo mode) decides what happens to every value taken
/// after it returns. Which inputs are read changes as soon as the mix's `go` block sees it:
/// at once if the block is waiting for input, otherwise at its next read, which looks for
/// changes before input values; a value sent while a read is already under way may still
/// be taken by it (as in core.async, where the change is one more channel in the `alts!`).
/// An input that is closed and drained leaves the mix. If the output is closed, the mix
/// stops.
///
/// ```swift
/// let out = Channel<String>(buffer: .fixed(16))
/// let mixer = mix(out)
/// let voice = Channel<String>(), music = Channel<String>()
/// mixer.admit(voice)
/// mixer.admit(music)
/// mixer.toggle([voice: MixState(solo: true)])   // only the voice is heard
/// ```
public final class Mix<Value: Sendable>: Sendable {
    struct Input {
        let channel: Channel<Value>
        var solo = false, mute = false, pause = false
    }

    struct State {
        var inputs: [ObjectIdentifier: Input] = [:]
        var soloMode = SoloMode.mute
        /// Closed (and replaced) on every change, which wakes the mix's `go` block to
        /// recompute what it reads (core.async's `change` channel, a sliding buffer of one:
        /// changes before the block looks coalesce into one wake).
        var change = Channel<Value>()
    }

    /// What the `go` block reads and passes on, computed from `State` (core.async's
    /// `calc-state`).
    struct Plan {
        var solos: Set<ObjectIdentifier> = []
        var mutes: Set<ObjectIdentifier> = []
        /// The change channel, then the inputs to read.
        var reads: [Channel<Value>]

        init(_ s: State) {
            var unpaused: [Channel<Value>] = [s.change]
            var soloed: [Channel<Value>] = [s.change]
            for (id, input) in s.inputs {
                if input.solo { solos.insert(id); soloed.append(input.channel) }
                if input.mute { mutes.insert(id) }
                if !input.pause { unpaused.append(input.channel) }
            }
            reads = s.soloMode == .pause && !solos.isEmpty ? soloed : unpaused
        }

        var change: Channel<Value> { reads[0] }
    }

    private let store = Locked(State())

    init<O>(_ out: Chan<Value, O>) {
        let state = self.store
        go {
            var plan = state.withLock { Plan($0) }
            while true {
                // The change channel is tried and queued on first, so that a change wins over
                // input values and closing it completes a read that is waiting.
                var reads = FairReads(plan.reads, leading: 1)
                let index = try await SelectEngine.choose(&reads, SelectExtras(), order: .priority)
                let channel = plan.reads[index]
                guard index > 0, let value = reads.value else {
                    // The change channel closed, or an input did: it leaves the mix.
                    if index > 0 {
                        state.withLock { s in
                            let id = ObjectIdentifier(channel)
                            if s.inputs[id]?.channel === channel { s.inputs[id] = nil }
                        }
                    }
                    plan = state.withLock { Plan($0) }
                    continue
                }
                // A change made before this value was sent (the change channel is closed by
                // then) decides what happens to it, even if this read had started earlier.
                if plan.change.isClosed { plan = state.withLock { Plan($0) } }
                let id = ObjectIdentifier(channel)
                if plan.solos.contains(id) || (plan.solos.isEmpty && !plan.mutes.contains(id)) {
                    guard try await out.send(value) else { return }
                }
            }
        }
    }

    /// Adds `channel` as an input, with no flags set (core.async's `admix`; admitting an
    /// input again clears its flags).
    ///
    /// ```swift
    /// mixer.admit(microphone)
    /// ```
    public func admit(_ channel: Channel<Value>) {
        changing { $0.inputs[ObjectIdentifier(channel)] = Input(channel: channel) }
    }

    /// Removes `channel` from the inputs (core.async's `unmix`).
    ///
    /// ```swift
    /// mixer.unmix(microphone)
    /// ```
    public func unmix(_ channel: Channel<Value>) {
        changing { $0.inputs[ObjectIdentifier(channel)] = nil }
    }

    /// Removes every input (core.async's `unmix-all`).
    ///
    /// ```swift
    /// mixer.unmixAll()
    /// ```
    public func unmixAll() {
        changing { $0.inputs.removeAll() }
    }

    /// Sets the flags of one or more inputs at once (core.async's `toggle`): each given
    /// flag replaces the input's current one, a `nil` flag keeps it. A channel that is not
    /// an input yet is admitted with the given flags (so it can join paused, say).
    ///
    /// ```swift
    /// mixer.toggle([music: MixState(pause: true), voice: MixState(solo: false, mute: true)])
    /// ```
    public func toggle(_ states: [Channel<Value>: MixState]) {
        changing { s in
            for (channel, flags) in states {
                let id = ObjectIdentifier(channel)
                var input = s.inputs[id] ?? Input(channel: channel)
                if let solo = flags.solo { input.solo = solo }
                if let mute = flags.mute { input.mute = mute }
                if let pause = flags.pause { input.pause = pause }
                s.inputs[id] = input
            }
        }
    }

    /// What happens to inputs that are not soloed while some input is (core.async's
    /// `solo-mode`); ``SoloMode/mute`` by default.
    ///
    /// ```swift
    /// mixer.soloMode = .pause
    /// ```
    public var soloMode: SoloMode {
        get { store.withLock { $0.soloMode } }
        set { changing { $0.soloMode = newValue } }
    }

    /// The current flags of `channel`, or `nil` if it is not an input.
    ///
    /// ```swift
    /// if mixer.state(of: voice)?.solo == true { print("solo") }
    /// ```
    public func state(of channel: Channel<Value>) -> MixState? {
        store.withLock { s in
            s.inputs[ObjectIdentifier(channel)].map { MixState(solo: $0.solo, mute: $0.mute, pause: $0.pause) }
        }
    }

    /// Applies `change` and wakes the `go` block to recompute what it reads.
    private func changing(_ change: (inout State) -> Void) {
        let old = store.withLock { s in
            change(&s)
            let old = s.change
            s.change = Channel<Value>()
            return old
        }
        old.close()
    }
}

/// Makes a ``Mix`` whose output is `out` (core.async's `mix`).
///
/// ```swift
/// let speakers = Channel<Sample>(buffer: .fixed(256))
/// let mixer = mix(speakers)
/// mixer.admit(left)
/// mixer.admit(right)
/// ```
public func mix<T, O>(_ out: Chan<T, O>) -> Mix<T> {
    Mix(out)
}

