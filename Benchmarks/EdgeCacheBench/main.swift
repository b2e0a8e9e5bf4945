import Foundation

// edgecache-bench [outbox|stream|apply|scale|all] [--quick] [--backlog N]
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
let quick = arguments.contains("--quick")
var backlog = quick ? 20_000 : 200_000
if let index = arguments.firstIndex(of: "--backlog"), index + 1 < arguments.endIndex, let n = Int(arguments[index + 1]) {
    backlog = n
}
let root = FileManager.default.currentDirectoryPath
print("edgecache-bench: \(quick ? "quick" : "full") run, \(ProcessInfo.processInfo.processorCount) cores, \(Date())")
let only = arguments.first { !$0.hasPrefix("--") && Int($0) == nil && !$0.contains(",") } ?? "all"
if only == "all" || only == "stream" || only == "apply" {
    for line in try await benchApply(quick: quick) { print(line) }
}
if only == "all" || only == "stream" {
    for line in try await benchPropagation(quick: quick, repositoryRoot: root) { print(line) }
}
if only == "all" || only == "scale" {
    var sizes: [Int]?
    if let index = arguments.firstIndex(of: "--sizes"), index + 1 < arguments.endIndex {
        sizes = arguments[index + 1].split(separator: ",").compactMap { Int($0) }
    }
    for line in try await benchScale(quick: quick, repositoryRoot: root, sizes: sizes) { print(line) }
}
if only == "all" || only == "outbox" {
    for line in try await benchEnqueue(quick: quick) { print(line) }
    for line in try await benchDrain(backlog: backlog, repositoryRoot: root) { print(line) }
}
