/// The names a tenant may have: 1 to 64 characters, letters, digits, `-`, `_` and `.`,
/// starting with a letter or a digit (what `tools/gen-certs.sh` issues is a subset).
///
/// A certificate whose `urn:edgecache:tenant:` value is not such a name (empty, a space, a
/// slash) names no tenant and is refused (403), like one that names none.
package enum TenantName {
    package static func isValid(_ name: some StringProtocol) -> Bool {
        let utf8 = name.utf8
        guard let first = utf8.first, utf8.count <= 64, isAlphanumeric(first) else { return false }
        return utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        default: false
        }
    }
}
