import CZlib

/// One-shot zlib compression with a 4-byte length prefix, bounded on decompression.
package enum Zlib {
    /// Largest plaintext ``decompress(_:)`` will produce (guards against zip bombs).
    package static let maxDecompressedSize = 64 * 1024 * 1024

    /// `uint32be(length) || zlib(data)`.
    ///
    /// The window and hash table are sized to the input: `compress2` sets up zlib's full 256 KiB
    /// of state (a 32 KiB window) for every call, and allocating and clearing it was a third of
    /// the cost of sealing a 2 KB resource (docs/benchmarks.md, stream apply). Any zlib decoder
    /// reads the result; a small window also makes decoding allocate less.
    package static func compress(_ data: [UInt8], level: Int32 = 1) throws(CryptoError) -> [UInt8] {
        var windowBits: Int32 = 9
        while windowBits < 15, (1 << windowBits) < data.count { windowBits += 1 }
        let memLevel: Int32 = windowBits <= 12 ? 6 : 8
        var stream = z_stream()
        guard
            deflateInit2_(
                &stream, level, Z_DEFLATED, windowBits, memLevel, Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
                == Z_OK
        else { throw CryptoError("zlib compression could not start") }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(data.count)))
        var out = [UInt8](repeating: 0, count: bound + 4)
        let n = UInt32(data.count)
        out[0] = UInt8(n >> 24); out[1] = UInt8(n >> 16 & 0xFF); out[2] = UInt8(n >> 8 & 0xFF); out[3] = UInt8(n & 0xFF)
        let (rc, produced) = out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { i -> (Int32, Int) in
                stream.next_in = UnsafeMutablePointer(mutating: i.baseAddress)
                stream.avail_in = uInt(i.count)
                stream.next_out = o.baseAddress! + 4
                stream.avail_out = uInt(bound)
                let rc = deflate(&stream, Z_FINISH)
                return (rc, bound - Int(stream.avail_out))
            }
        }
        guard rc == Z_STREAM_END else { throw CryptoError("zlib compression failed (\(rc))") }
        out.removeLast(out.count - 4 - produced)
        return out
    }

    /// Reverses ``compress(_:level:)``.
    package static func decompress(_ data: [UInt8]) throws(CryptoError) -> [UInt8] {
        guard data.count >= 4 else { throw CryptoError("compressed data too short") }
        let n = Int(data[0]) << 24 | Int(data[1]) << 16 | Int(data[2]) << 8 | Int(data[3])
        guard n <= maxDecompressedSize else { throw CryptoError("compressed data claims \(n) bytes") }
        if n == 0 { return [] }
        var out = [UInt8](repeating: 0, count: n)
        var outLength = uLongf(n)
        let rc = out.withUnsafeMutableBufferPointer { o in
            data.withUnsafeBufferPointer { i in
                uncompress(o.baseAddress, &outLength, i.baseAddress! + 4, uLong(data.count - 4))
            }
        }
        guard rc == Z_OK, Int(outLength) == n else { throw CryptoError("zlib decompression failed (\(rc))") }
        return out
    }
}

/// A streaming zlib compressor; each ``compress(_:)`` output is decodable on its own arrival
/// (sync flush), which is what a live change stream needs.
package final class ZlibDeflater {
    private let stream: UnsafeMutablePointer<z_stream>

    package init(level: Int32 = 1) throws(CryptoError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = deflateInit_(stream, level, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            stream.deallocate()
            throw CryptoError("deflateInit failed (\(rc))")
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
    }

    /// Compresses `input` and flushes, returning all output produced.
    package func compress(_ input: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: max(1024, input.count / 2 + 64))
        var input = input
        input.withUnsafeMutableBufferPointer { inBuf in
            stream.pointee.next_in = inBuf.baseAddress
            stream.pointee.avail_in = uInt(inBuf.count)
            repeat {
                chunk.withUnsafeMutableBufferPointer { outBuf in
                    stream.pointee.next_out = outBuf.baseAddress
                    stream.pointee.avail_out = uInt(outBuf.count)
                    _ = deflate(stream, Z_SYNC_FLUSH)
                }
                output.append(contentsOf: chunk[0..<(chunk.count - Int(stream.pointee.avail_out))])
            } while stream.pointee.avail_out == 0
            stream.pointee.next_in = nil
        }
        return output
    }
}

/// A streaming zlib decompressor with a bound on how much one call may produce.
package final class ZlibInflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private var finished = false

    package init() throws(CryptoError) {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = inflateInit_(stream, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            stream.deallocate()
            throw CryptoError("inflateInit failed (\(rc))")
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
    }

    /// Decompresses the next piece of the stream.
    /// - Throws: on corrupt data or when the output of this call would exceed `limit` bytes.
    package func decompress(_ input: [UInt8], limit: Int = 64 * 1024 * 1024) throws(CryptoError) -> [UInt8] {
        guard !finished else {
            if input.isEmpty { return [] }
            throw CryptoError("data after the end of the zlib stream")
        }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var input = input
        var rc: Int32 = Z_OK
        input.withUnsafeMutableBufferPointer { inBuf in
            stream.pointee.next_in = inBuf.baseAddress
            stream.pointee.avail_in = uInt(inBuf.count)
            repeat {
                chunk.withUnsafeMutableBufferPointer { outBuf in
                    stream.pointee.next_out = outBuf.baseAddress
                    stream.pointee.avail_out = uInt(outBuf.count)
                    rc = inflate(stream, Z_NO_FLUSH)
                }
                output.append(contentsOf: chunk[0..<(chunk.count - Int(stream.pointee.avail_out))])
                if output.count > limit { rc = Z_MEM_ERROR; break }
            } while rc == Z_OK && (stream.pointee.avail_in > 0 || stream.pointee.avail_out == 0)
            stream.pointee.next_in = nil
        }
        if rc == Z_STREAM_END { finished = true; return output }
        guard rc == Z_OK || rc == Z_BUF_ERROR else { throw CryptoError("corrupt or oversized zlib stream (\(rc))") }
        return output
    }
}
