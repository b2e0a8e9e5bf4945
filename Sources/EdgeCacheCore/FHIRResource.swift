/// One stored version of a resource, as every store and the change stream carry it.
package struct ResourceVersion: Sendable, Equatable {
    package var type: String
    package var id: String
    /// Version number; the first version is 1.
    package var version: Int64
    /// When this version was committed at the origin (epoch ms).
    package var lastUpdated: Int64
    /// Whether this version is a deletion (tombstone).
    package var deleted: Bool
    /// The full resource JSON with `id` and `meta` stamped; empty for a deletion.
    package var json: [UInt8]

    package init(type: String, id: String, version: Int64, lastUpdated: Int64, deleted: Bool, json: [UInt8]) {
        self.type = type
        self.id = id
        self.version = version
        self.lastUpdated = lastUpdated
        self.deleted = deleted
        self.json = json
    }

    /// `W/"n"`
    package var etag: String { "W/\"\(version)\"" }
}

/// Validation and stamping of incoming FHIR resources.
package enum FHIRResource {
    /// Parses and validates a request body for `type`.
    ///
    /// - Parameters:
    ///   - urlID: the id in the URL for an update; `nil` for a create (a body id is then ignored).
    /// - Throws: ``FHIRError`` 400 for malformed JSON, nesting deeper than 64, a `resourceType`
    ///   that does not match the path, an invalid id, or a body id that differs from the URL id.
    package static func parse(body: [UInt8], type: String, urlID: String?) throws(FHIRError) -> JSONObject {
        // A bare array is refused before it is parsed (it cannot be a resource, and parsing it
        // would only spend memory).
        if body.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "[") {
            throw .invalid("The request body must be a JSON object")
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            throw .invalid("The request body is not valid JSON: \(error.description)")
        }
        guard case .object(var object) = value else { throw .invalid("The request body must be a JSON object") }
        guard let resourceType = object["resourceType"]?.stringValue else {
            throw .invalid("The resource has no resourceType")
        }
        guard resourceType == type else {
            throw .invalid("resourceType '\(resourceType.prefix(64))' does not match the URL's type '\(type)'")
        }
        if let bodyID = object["id"] {
            guard let idString = bodyID.stringValue else { throw .invalid("The resource id must be a string") }
            if let urlID {
                guard ResourceID.isValid(idString) else { throw .invalid("The resource id is not a valid FHIR id") }
                guard idString == urlID else {
                    throw .invalid("The resource id '\(idString)' does not match the URL id '\(urlID)'")
                }
            }
        }
        if let meta = object["meta"], meta.objectValue == nil { throw .invalid("meta must be an object") }
        object["id"] = nil
        return object
    }

    /// Sets `id`, `meta.versionId` and `meta.lastUpdated`, orders `resourceType, id, meta`
    /// first, and serializes compactly.
    package static func stamp(_ object: JSONObject, id: String, version: Int64, lastUpdated: Int64) -> [UInt8] {
        var object = object
        object["id"] = .string(id)
        var meta = object["meta"]?.objectValue ?? JSONObject()
        meta["versionId"] = .string(String(version))
        meta["lastUpdated"] = .string(FHIRTime.instant(millis: lastUpdated))
        meta.moveToFront(["versionId", "lastUpdated"])
        object["meta"] = .object(meta)
        object.moveToFront(["resourceType", "id", "meta"])
        return JSONValue.object(object).serialized()
    }
}
