/// The epoch of the origin's change log: a random id made when the origin's store is created
/// or restored from a copy (`edgecache restore`).
///
/// LSNs only order changes within one epoch. After a restore the origin hands out LSNs again
/// that edges may already have seen with other contents, so an edge that meets a new epoch
/// throws away what it holds and bootstraps again (both the main stream and the consent lane).
/// The origin sends it in the `EdgeCache-Log-Epoch` header of every `/replication/v1/changes`
/// and `/snapshot` response and in every heartbeat; an older origin sends none, and an edge
/// then keeps the epoch it knows.
package struct LogEpoch: Sendable, Hashable, CustomStringConvertible {
    /// Never zero (zero stands for "none known" where it is stored).
    package let value: UInt64

    /// Nil for zero.
    package init?(value: UInt64) {
        guard value != 0 else { return nil }
        self.value = value
    }

    /// Parses the wire form: 16 lowercase hex digits (nil for anything else, or zero).
    package init?(hex: String) {
        guard hex.utf8.count == 16, hex.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }),
            let value = UInt64(hex, radix: 16)
        else { return nil }
        self.init(value: value)
    }

    /// A new random epoch.
    package static func random() -> LogEpoch {
        var generator = SystemRandomNumberGenerator()
        while true {
            if let epoch = LogEpoch(value: generator.next()) { return epoch }
        }
    }

    /// The wire form: 16 lowercase hex digits.
    package var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// As stored in an INTEGER column.
    package var storedValue: Int64 { Int64(bitPattern: value) }

    /// From an INTEGER column (nil for 0: none known).
    package init?(storedValue: Int64) { self.init(value: UInt64(bitPattern: storedValue)) }

    package var description: String { hex }

    /// The response header that carries the epoch on `/replication/v1/changes` and `/snapshot`.
    package static let headerName = "EdgeCache-Log-Epoch"
}
