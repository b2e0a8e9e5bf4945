"""SMART `fhirclient` (4.4.0) against the edge, unmodified: it presents the tenant's client
certificate (configured on its requests Session) and reads, searches with paging, creates,
updates and deletes carebundle data. Writes are checked at the origin too."""

import importlib
import itertools
import math

import pytest
import requests
from fhirclient.client import FHIRClient
from fhirclient.models.contactpoint import ContactPoint
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from conftest import content

SEARCH_PARAMETERS = {"_id", "_lastUpdated", "identifier", "patient", "subject"}


@pytest.fixture(scope="module")
def smart(pair):
    client = FHIRClient(settings={"app_id": "edgecache-interop", "api_base": pair.edge_fhir})
    session = client.server.session
    # Client-certificate authentication and the PKI's CA, on the client's own Session.
    # trust_env off: REQUESTS_CA_BUNDLE in the environment would override `verify`.
    session.trust_env = False
    session.verify = pair.ca
    session.cert = (pair.client_cert, pair.client_key)
    yield client
    session.close()


def model(resource_type):
    return getattr(importlib.import_module(f"fhirclient.models.{resource_type.lower()}"), resource_type)


def heart_rate(patient_id, bpm):
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-01-01T10:15:00Z",
        "valueQuantity": {"value": bpm, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
    }


def create_heart_rate(smart, dataset, bpm):
    """Creates an Observation through the edge with fhirclient; returns the server's JSON."""
    created = Observation(heart_rate(dataset.write_patient, bpm)).create(smart.server)
    assert created and created["id"], created
    return created


def test_capability_statement_parses_in_the_strict_models(smart):
    assert smart.prepare()
    statement = smart.server.capabilityStatement
    assert statement.fhirVersion == "4.0.1"
    observation = next(r for r in statement.rest[0].resource if r.type == "Observation")
    assert SEARCH_PARAMETERS <= {p.name for p in observation.searchParam}
    assert {"read", "create", "update", "delete", "search-type"} <= {i.code for i in observation.interaction}


def test_reads_every_loaded_resource(smart, dataset):
    for loaded in dataset.untouched():
        resource = model(loaded["resourceType"]).read(loaded["id"], smart.server)
        assert content(resource.as_json()) == content(loaded), f"{loaded['resourceType']}/{loaded['id']}"
        assert resource.meta.versionId == "1"


def test_search_by_patient_follows_next_links(smart, dataset):
    page_size = 7
    for patient_id in dataset.read_patients:
        expected = dataset.ids_about("Observation", patient_id)
        pages = list(Observation.where({"patient": patient_id, "_count": str(page_size)}).perform_iter(smart.server))
        found = [entry.resource for page in pages for entry in page.entry or []]
        assert all(isinstance(r, Observation) for r in found)
        assert len(found) == len(expected), "no resource is returned twice"
        assert {r.id for r in found} == expected
        assert len(pages) == math.ceil(len(expected) / page_size) > 1
        assert all(len(page.entry or []) <= page_size for page in pages)


@pytest.mark.parametrize("resource_type", ["Condition", "DiagnosticReport", "Encounter", "MedicationRequest"])
def test_search_by_subject_for_each_clinical_type(smart, dataset, resource_type):
    for patient_id in dataset.read_patients:
        search = model(resource_type).where({"subject": f"Patient/{patient_id}", "_count": "2"})
        found = [r.id for r in search.perform_resources_iter(smart.server)]
        assert len(found) == len(set(found))
        assert set(found) == dataset.ids_about(resource_type, patient_id)


def test_search_by_identifier(smart, dataset):
    patient = dataset.get("Patient", dataset.read_patients[0])
    identifier = patient["identifier"][0]
    search = Patient.where({"identifier": f"{identifier['system']}|{identifier['value']}"})
    assert [p.id for p in search.perform_resources_iter(smart.server)] == [patient["id"]]


def test_chained_sorted_search_and_revinclude(smart, dataset):
    patient = dataset.get("Patient", dataset.read_patients[1])
    identifier = patient["identifier"][0]
    chained = Observation.where({
        "subject:Patient.identifier": f"{identifier['system']}|{identifier['value']}", "_sort": "-date", "_count": "10"})
    found = list(chained.perform_resources_iter(smart.server))
    assert [r.id for r in found] and {r.id for r in found} == dataset.ids_about("Observation", patient["id"])
    dates = [r.effectiveDateTime.datetime for r in found]
    assert dates == sorted(dates, reverse=True)
    bundle = Patient.where({"_id": patient["id"], "_revinclude": "Condition:subject"}).perform(smart.server)
    assert [e.resource.id for e in bundle.entry if e.search.mode == "match"] == [patient["id"]]
    included = {e.resource.id for e in bundle.entry if e.search.mode == "include"}
    assert included and included == dataset.ids_about("Condition", patient["id"])


def test_create_then_read_back_at_the_edge_and_the_origin(smart, dataset, pair):
    created = create_heart_rate(smart, dataset, 72)
    assert created["meta"]["versionId"] == "1"
    back = Observation.read(created["id"], smart.server)
    assert content(back.as_json()) == content(created)
    at_origin = pair.origin.get(f"/fhir/Observation/{created['id']}")
    assert at_origin.status_code == 200
    assert at_origin.headers["ETag"] == 'W/"1"'
    assert content(at_origin.json()) == content(created)


def test_created_resource_is_found_by_search_at_the_edge(smart, dataset):
    created = create_heart_rate(smart, dataset, 81)
    search = Observation.where({"patient": dataset.write_patient, "_count": "10"})
    assert created["id"] in {r.id for r in search.perform_resources_iter(smart.server)}


def test_update_raises_the_version(smart, dataset, pair):
    created = create_heart_rate(smart, dataset, 64)
    observation = Observation.read(created["id"], smart.server)
    observation.status = "amended"
    observation.valueQuantity.value = 66
    updated = observation.update()
    assert updated["meta"]["versionId"] == "2"
    at_edge = pair.edge.get(f"/fhir/Observation/{created['id']}")
    assert at_edge.headers["ETag"] == 'W/"2"'
    assert Observation.read(created["id"], smart.server).valueQuantity.value == 66
    search = Observation.where({"_id": created["id"]})
    assert [(r.meta.versionId, r.status) for r in search.perform_resources_iter(smart.server)] == [("2", "amended")]
    at_origin = pair.origin.get(f"/fhir/Observation/{created['id']}")
    assert at_origin.headers["ETag"] == 'W/"2"'
    assert at_origin.json()["status"] == "amended"
    assert at_origin.json()["valueQuantity"]["value"] == 66


def test_update_of_a_loaded_patient_reaches_the_origin(smart, dataset, pair):
    patient = Patient.read(dataset.write_patient, smart.server)
    before = int(patient.meta.versionId)
    patient.telecom = [ContactPoint({"system": "phone", "value": "+1 555 0100", "use": "mobile"})]
    updated = patient.update()
    assert int(updated["meta"]["versionId"]) == before + 1
    assert Patient.read(dataset.write_patient, smart.server).telecom[0].value == "+1 555 0100"
    at_origin = pair.origin.get(f"/fhir/Patient/{dataset.write_patient}")
    assert at_origin.json()["meta"]["versionId"] == str(before + 1)
    assert at_origin.json()["telecom"] == [{"system": "phone", "value": "+1 555 0100", "use": "mobile"}]
    assert content(at_origin.json())["name"] == dataset.get("Patient", dataset.write_patient)["name"]


def test_delete_then_read_answers_gone(smart, dataset, pair):
    created = create_heart_rate(smart, dataset, 90)
    Observation.read(created["id"], smart.server).delete()
    # ARCHITECTURE.md, "Read hit (edge)": a cached deletion (tombstone) gives 410 Gone.
    # fhirclient maps only 401, 403 and 404 to its own exceptions; 410 is requests' HTTPError.
    with pytest.raises(requests.HTTPError) as raised:
        Observation.read(created["id"], smart.server)
    assert raised.value.response.status_code == 410
    assert raised.value.response.json()["resourceType"] == "OperationOutcome"
    assert pair.origin.get(f"/fhir/Observation/{created['id']}").status_code == 410
    search = Observation.where({"patient": dataset.write_patient, "_count": "10"})
    assert created["id"] not in {r.id for r in search.perform_resources_iter(smart.server)}


def test_count_zero_gives_the_total_and_no_next_link(smart, dataset):
    patient_id = dataset.read_patients[0]
    pages = Observation.where({"patient": patient_id, "_count": "0"}).perform_iter(smart.server)
    first_pages = list(itertools.islice(pages, 3))  # the client would follow the link forever
    assert first_pages[0].total == len(dataset.ids_about("Observation", patient_id))
    assert len(first_pages) == 1, [link.url for link in first_pages[0].link if link.relation == "next"]
