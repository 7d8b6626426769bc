import DequeModule
import Logging
import Parley

/// OTP's restart intensity: more than `intensity` restarts within `period` and the
/// supervisor gives up.
struct RestartIntensity {
    let intensity: Int
    let period: Duration
    /// Restart times, oldest first: expired ones leave from the front, so a restart costs
    /// O(1) however high the intensity.
    private var times = Deque<ContinuousClock.Instant>()

    init(intensity: Int, period: Duration) {
        self.intensity = intensity
        self.period = period
    }

    /// Records a restart now; false if that makes more than `intensity` within `period`
    /// (supervisor.erl's `add_restart/1`).
    mutating func add(now: ContinuousClock.Instant = .now) -> Bool {
        times.append(now)
        let horizon = now - period
        while let first = times.first, first < horizon { times.removeFirst() }
        return times.count <= intensity
    }

    var total = 0
}
