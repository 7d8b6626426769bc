@_exported import ParleyRuntime
@_exported import ParleyChannels
