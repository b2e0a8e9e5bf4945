import Foundation

/// One PKI (tenants a and b) and one foreign CA for the whole test run.
enum SharedPKI {
    static let root = TempDir()
    static let main: TestPKI = try! TestPKI(dir: root.path + "/pki", tenants: ["a", "b"])
    static let foreign: TestPKI = try! TestPKI(dir: root.path + "/foreign", tenants: ["a"])
}
