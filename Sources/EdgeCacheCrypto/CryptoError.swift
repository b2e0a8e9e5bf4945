/// A failure to seal, open, compress or load key material. Never carries plaintext.
package struct CryptoError: Error, Sendable, CustomStringConvertible {
    package let message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}
