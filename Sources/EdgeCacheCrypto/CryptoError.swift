/// A failure to seal, open, compress or load key material. Never carries plaintext.
public struct CryptoError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
