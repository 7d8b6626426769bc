#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CParleyShims

/// A one-permit parking spot for a thread (a mutex, a condition variable and a flag): what
/// blocking channel operations sleep on.
///
/// ```swift
/// let p = Parker.forCurrentThread
/// Thread-style: another thread calls p.unpark(); this one returns from p.park()
/// ```
///
/// `unpark` before `park` leaves the permit, so the next `park` returns at once:
/// no wake-up is ever lost.
@usableFromInline
package final class Parker: @unchecked Sendable {
    // @unchecked Sendable: `permit` is only read or written with `mutex` held; the pthread
    // objects live at stable heap addresses for the Parker's whole life.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>
    private var permit = false

    @usableFromInline
    package init() {
        mutex = .allocate(capacity: 1)
        cond = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        #if os(Linux)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        cond.deallocate()
    }

    /// Waits until `unpark` is called or the monotonic `deadline` (nanoseconds) passes.
    @usableFromInline
    package func park(deadline: UInt64 = .max) {
        pthread_mutex_lock(mutex)
        while !permit {
            if deadline == .max {
                pthread_cond_wait(cond, mutex)
            } else {
                if MonotonicClock.now >= deadline { break }
                var ts = timespec()
                ts.tv_sec = Int(deadline / 1_000_000_000)
                ts.tv_nsec = Int(deadline % 1_000_000_000)
                #if os(Linux)
                pthread_cond_timedwait(cond, mutex, &ts)
                #else
                // Darwin has no monotonic condattr; fall back to a relative wait.
                let rel = deadline &- MonotonicClock.now
                var r = timespec(tv_sec: Int(rel / 1_000_000_000), tv_nsec: Int(rel % 1_000_000_000))
                pthread_cond_timedwait_relative_np(cond, mutex, &r)
                #endif
            }
        }
        permit = false
        pthread_mutex_unlock(mutex)
    }

    @usableFromInline
    package func unpark() {
        pthread_mutex_lock(mutex)
        permit = true
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }
}

private let parkerKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, { p in if let p { Unmanaged<Parker>.fromOpaque(p).release() } })
    return key
}()

extension Parker {
    /// The calling thread's own parker, made on first use and kept for the thread's life
    /// (blocking channel operations park on it).
    @usableFromInline
    package static var forCurrentThread: Parker {
        if let p = pthread_getspecific(parkerKey) { return Unmanaged<Parker>.fromOpaque(p).takeUnretainedValue() }
        let p = Parker()
        pthread_setspecific(parkerKey, Unmanaged.passRetained(p).toOpaque())
        return p
    }
}

/// Starts a detached OS thread running `body`.
package func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        // @unchecked Sendable: written once before the thread starts, read once by it.
        let body: @Sendable () -> Void
        let name: String
        init(_ body: @escaping @Sendable () -> Void, _ name: String) { self.body = body; self.name = name }
    }
    let box = Unmanaged.passRetained(Box(body, name)).toOpaque()
    #if os(Linux)
    var tid = pthread_t()
    #else
    var tid: pthread_t? = nil
    #endif
    let rc = pthread_create(&tid, nil, { arg in
        let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
        box.name.withCString { parley_set_thread_name($0) }
        box.body()
        return nil
    }, box)
    precondition(rc == 0, "Parley: pthread_create failed (\(rc))")
    pthread_detach(tid)
}
