/// How big a run is: `full` for the figures in docs/benchmarks.md, `quick` for a first look,
/// `smoke` (tiny sizes, seconds per part) so that CI notices a benchmark that no longer runs.
enum BenchSize: String, Sendable {
    case full, quick, smoke

    init(arguments: some Sequence<String>) {
        let flags = Set(arguments)
        self = flags.contains("--smoke") ? .smoke : flags.contains("--quick") ? .quick : .full
    }

    func pick<Value>(full: Value, quick: Value, smoke: Value) -> Value {
        switch self {
        case .full: full
        case .quick: quick
        case .smoke: smoke
        }
    }
}
