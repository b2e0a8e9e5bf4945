import EdgeCacheCore
import HTTPTypes
import Hummingbird
import NIOCore

/// Builds Hummingbird responses for FHIR.
package enum FHIRHTTP {
    package static let fhirJSON = "application/fhir+json; charset=utf-8"

    /// A response with the given status, headers and body.
    package static func response(status: Int, headers: [(String, String)] = [], body: [UInt8]? = nil) -> Response {
        var fields = HTTPFields()
        for (name, value) in headers {
            if let fieldName = HTTPField.Name(name) { fields.append(HTTPField(name: fieldName, value: value)) }
        }
        guard let body else {
            fields[.contentLength] = "0"
            return Response(status: .init(code: status), headers: fields)
        }
        return Response(status: .init(code: status), headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// An OperationOutcome response for an error.
    package static func error(_ error: FHIRError, requestID: String? = nil) -> Response {
        var headers = [("Content-Type", fhirJSON)] + error.headers
        if let requestID { headers.append(("X-Request-Id", requestID)) }
        return response(status: error.status, headers: headers, body: OperationOutcome.json(for: error))
    }
}

/// Limits on what a request may carry.
package struct RequestLimits: Sendable {
    /// Largest request body accepted (bytes); larger → 413.
    package var maxBodyBytes: Int
    /// Largest total size of request header names and values (bytes); larger → 431.
    package var maxHeaderBytes: Int
    /// Longest time a client may take to send its body (seconds).
    package var bodyTimeoutSeconds: Int

    package init(maxBodyBytes: Int = 4 * 1024 * 1024, maxHeaderBytes: Int = 16 * 1024, bodyTimeoutSeconds: Int = 30) {
        self.maxBodyBytes = maxBodyBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.bodyTimeoutSeconds = bodyTimeoutSeconds
    }
}

extension Request {
    /// Size of all header names and values.
    var headerBytes: Int {
        headers.reduce(0) { $0 + $1.name.rawName.utf8.count + $1.value.utf8.count + 4 }
            + (head.path?.utf8.count ?? 0)
    }

    /// A header's value by name (first occurrence).
    func header(_ name: String) -> String? {
        guard let fieldName = HTTPField.Name(name) else { return nil }
        return headers[fieldName]
    }

    /// Reads the whole body, bounded in size (413) and time (408).
    func collectBody(limits: RequestLimits) async throws(FHIRError) -> [UInt8] {
        let body = self.body
        let limit = limits.maxBodyBytes
        if let length = header("Content-Length").flatMap(Int.init), length > limit {
            throw FHIRError(status: 413, code: "too-costly", "The request body exceeds the limit of \(limit) bytes")
        }
        do {
            return try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
                group.addTask {
                    var bytes: [UInt8] = []
                    for try await chunk in body {
                        if bytes.count + chunk.readableBytes > limit {
                            throw FHIRError(status: 413, code: "too-costly", "The request body exceeds the limit of \(limit) bytes")
                        }
                        bytes.append(contentsOf: chunk.readableBytesView)
                    }
                    return bytes
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(limits.bodyTimeoutSeconds))
                    return nil
                }
                let first = try await group.next()!
                group.cancelAll()
                guard let bytes = first else {
                    throw FHIRError(status: 408, code: "timeout", "The request body was not received in time")
                }
                return bytes
            }
        } catch let error as FHIRError {
            throw error
        } catch {
            throw FHIRError(status: 400, code: "invalid", "The request body could not be read")
        }
    }
}

extension HTTPField.Name {
    /// The request id every answer carries (the audit record's id).
    package static let requestID = Self("X-Request-Id")!
    /// The origin log's epoch on replication answers (``LogEpoch``).
    package static let logEpoch = Self(LogEpoch.headerName)!
}
