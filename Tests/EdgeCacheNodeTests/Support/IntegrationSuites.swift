import Testing

/// The suites that run real nodes, kill processes and measure recovery: run one at a time so
/// their timing checks never compete with each other for the machine's cores.
@Suite(.serialized) enum IntegrationSuites {}
