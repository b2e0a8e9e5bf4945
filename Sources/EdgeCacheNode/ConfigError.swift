/// A configuration problem: which file, which line, what is wrong and how to fix it.
package struct ConfigError: Error, Sendable, CustomStringConvertible {
    package let file: String
    package let line: Int?
    package let message: String

    package init(file: String, line: Int?, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    package var description: String {
        if let line { return "\(file):\(line): \(message)" }
        return "\(file): \(message)"
    }
}
