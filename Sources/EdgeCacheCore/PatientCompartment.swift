/// Which patients' compartments a resource belongs to.
///
/// A deliberately small reading of the FHIR R4 Patient compartment: a Patient resource is in
/// its own compartment; any other resource is in the compartment of each patient that its
/// top-level `subject`, `patient`, `beneficiary` or `individual` reference names. Access control
/// (patient/ scopes) and consent (blocking a patient's compartment) both use this one rule.
public enum PatientCompartment {
    /// The reference fields that place a resource in a patient's compartment.
    public static let referenceFields = ["subject", "patient", "beneficiary", "individual"]

    /// The ids of the patients whose compartment holds `object` (of resource type `type`).
    public static func patientIDs(type: String, id: String?, object: JSONObject) -> Set<String> {
        var patients: Set<String> = []
        if type == "Patient", let id { patients.insert(id) }
        for field in referenceFields {
            guard let ref = object[field]?.objectValue?["reference"]?.stringValue,
                let normalized = SearchTerms.normalizeReference(ref), normalized.hasPrefix("Patient/")
            else { continue }
            patients.insert(String(normalized.dropFirst("Patient/".count)))
        }
        return patients
    }

    /// The patients of a serialized resource; an unparsable body names no patient.
    public static func patientIDs(type: String, id: String?, json: [UInt8]) -> Set<String> {
        guard case .object(let object)? = try? JSONParser.parse(json) else {
            return type == "Patient" ? Set([id].compactMap { $0 }) : []
        }
        return patientIDs(type: type, id: id, object: object)
    }
}
