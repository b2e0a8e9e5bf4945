import Foundation

// edgecache-bench [outbox|stream|apply|scale|search|all] [--quick|--smoke] [--backlog N] [--sizes N,N] [--total N]
// edgecache-bench hello --cert F --key F --ca F --body FILE [--port P]   (tools/bench-reads: the HTTP stack's floor)
// edgecache-bench load --db FILE --kek FILE --tenant T --ndjson FILE [--batch N]   (tools/bench-reads)
// Prints one line per figure. Build in release mode for figures worth quoting (tools/bench).
let arguments = CommandLine.arguments.dropFirst()
if arguments.first == "hello" {
    do {
        try await runHello(Array(arguments.dropFirst()))
    } catch {
        FileHandle.standardError.write(Data("edgecache-bench hello: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}
if arguments.first == "load" {
    do {
        for line in try await runLoad(Array(arguments.dropFirst())) { print(line) }
    } catch {
        FileHandle.standardError.write(Data("edgecache-bench load: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}
let size = BenchSize(arguments: arguments)
var backlog = size.pick(full: 200_000, quick: 20_000, smoke: 500)
if let index = arguments.firstIndex(of: "--backlog"), index + 1 < arguments.endIndex, let n = Int(arguments[index + 1]) {
    backlog = n
}
let root = FileManager.default.currentDirectoryPath
print("edgecache-bench: \(size.rawValue) run, \(ProcessInfo.processInfo.processorCount) cores, \(Date())")
let only = arguments.first { !$0.hasPrefix("--") && Int($0) == nil && !$0.contains(",") } ?? "all"
guard ["all", "stream", "apply", "scale", "outbox", "search"].contains(only) else {
    FileHandle.standardError.write(
        Data("edgecache-bench: unknown part '\(only)' (stream, apply, scale, outbox, search, all, hello, load)\n".utf8))
    exit(2)
}
// A self-test of the harness: tools/bench must fail, naming the part, when a part fails.
if let broken = ProcessInfo.processInfo.environment["EDGECACHE_BENCH_FAIL"], broken == only {
    fatalError("edgecache-bench: part '\(only)' broken on purpose (EDGECACHE_BENCH_FAIL)")
}
if only == "all" || only == "stream" || only == "apply" {
    for line in try await benchApply(size: size) { print(line) }
}
if only == "all" || only == "stream" {
    for line in try await benchPropagation(size: size, repositoryRoot: root) { print(line) }
}
if only == "all" || only == "scale" {
    var sizes: [Int]?
    if let index = arguments.firstIndex(of: "--sizes"), index + 1 < arguments.endIndex {
        sizes = arguments[index + 1].split(separator: ",").compactMap { Int($0) }
    }
    for line in try await benchScale(size: size, repositoryRoot: root, sizes: sizes) { print(line) }
}
if only == "all" || only == "search" {
    var total: Int?
    if let index = arguments.firstIndex(of: "--total"), index + 1 < arguments.endIndex { total = Int(arguments[index + 1]) }
    for line in try await benchSearch(size: size, total: total) { print(line) }
}
if only == "all" || only == "outbox" {
    for line in try await benchEnqueue(size: size) { print(line) }
    for line in try await benchDrain(backlog: backlog, repositoryRoot: root) { print(line) }
}
