@_exported import ParleyRuntime
