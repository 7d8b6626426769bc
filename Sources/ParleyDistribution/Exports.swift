// `import ParleyDistribution` brings the term type and codec too, as before they had a module
// of their own.
@_exported import ParleyETF
