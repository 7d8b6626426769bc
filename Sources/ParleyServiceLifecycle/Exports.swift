// What an app needs to run a supervision tree as a service: the OTP behaviours (and through
// them processes and channels), swift-service-lifecycle's ServiceGroup, and swift-log's
// Logger that ServiceGroup takes. One `import ParleyServiceLifecycle` is enough.
@_exported import Logging
@_exported import ParleyOTP
@_exported import ServiceLifecycle
