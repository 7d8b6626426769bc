@_exported import Parley
