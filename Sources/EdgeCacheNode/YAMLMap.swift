import Yams

/// A YAML mapping read key by key, with errors that name the file and line.
struct YAMLMap {
    let file: String
    let node: Node
    let path: String
    private var used: Set<String> = []

    init(file: String, node: Node, path: String) throws(ConfigError) {
        guard node.mapping != nil else {
            throw ConfigError(file: file, line: node.mark?.line, "\(path.isEmpty ? "the file" : "'\(path)'") must be a mapping of keys")
        }
        self.file = file
        self.node = node
        self.path = path
    }

    var line: Int? { node.mark?.line }

    /// The line of a key's value (the mapping's own line if the key is absent).
    func line(of key: String) -> Int? { node.mapping?[key]?.mark?.line ?? line }

    private func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private mutating func value(_ key: String) -> Node? {
        used.insert(key)
        guard let v = node.mapping?[key] else { return nil }
        if case .scalar(let s) = v, s.tag.rawValue == Tag.Name.null.rawValue || s.string.isEmpty && s.style == .plain {
            return nil
        }
        return v
    }

    mutating func string(_ key: String) throws(ConfigError) -> String? {
        guard let v = value(key) else { return nil }
        guard case .scalar(let scalar) = v else {
            throw ConfigError(file: file, line: v.mark?.line, "'\(name(key))' must be a single value")
        }
        return scalar.string
    }

    mutating func requiredString(_ key: String, hint: String) throws(ConfigError) -> String {
        guard let s = try string(key), !s.isEmpty else {
            throw ConfigError(file: file, line: line, "'\(name(key))' is required: \(hint)")
        }
        return s
    }

    mutating func int(_ key: String, range: ClosedRange<Int>) throws(ConfigError) -> Int? {
        guard let v = value(key) else { return nil }
        guard let n = v.int else {
            throw ConfigError(file: file, line: v.mark?.line, "'\(name(key))' must be a whole number, got '\(v.string ?? "?")'")
        }
        guard range.contains(n) else {
            throw ConfigError(
                file: file, line: v.mark?.line,
                "'\(name(key))' must be between \(range.lowerBound) and \(range.upperBound), got \(n)")
        }
        return n
    }

    mutating func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v.bool else {
            throw ConfigError(file: file, line: v.mark?.line, "'\(name(key))' must be true or false, got '\(v.string ?? "?")'")
        }
        return b
    }

    /// The items of a list (`[a, b]` or one `- item` per line), with the list's key path for errors.
    mutating func list(_ key: String) throws(ConfigError) -> (path: String, items: [Node])? {
        guard let v = value(key) else { return nil }
        guard let items = v.sequence else {
            throw ConfigError(file: file, line: v.mark?.line, "'\(name(key))' must be a list")
        }
        return (name(key), Array(items))
    }

    mutating func map(_ key: String) throws(ConfigError) -> YAMLMap? {
        guard let v = value(key) else { return nil }
        return try YAMLMap(file: file, node: v, path: name(key))
    }

    mutating func requiredMap(_ key: String, hint: String) throws(ConfigError) -> YAMLMap {
        guard let m = try map(key) else { throw ConfigError(file: file, line: line, "'\(name(key))' is required: \(hint)") }
        return m
    }

    /// Fails on keys nobody asked for (typos), naming the line and the keys that are known.
    func rejectUnknownKeys() throws(ConfigError) {
        guard let mapping = node.mapping else { return }
        for (keyNode, _) in mapping {
            let key = keyNode.string ?? "?"
            if !used.contains(key) {
                throw ConfigError(
                    file: file, line: keyNode.mark?.line,
                    "unknown key '\(name(key))'; expected one of: \(used.sorted().joined(separator: ", "))")
            }
        }
    }
}
