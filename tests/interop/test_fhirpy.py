"""`fhirpy` (2.3.1) against the edge, unmodified: it authenticates with a SMART bearer token (an
ES256 JWT from the edge's configured issuer, passed as fhirpy's `authorization`) and reads,
searches with paging, creates, updates and deletes carebundle data, with the sync client
(requests) and the async client (aiohttp). Writes are checked at the origin too."""

import asyncio
import ssl
import time

import pytest
from fhirpy import AsyncFHIRClient, SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError, OperationOutcome, ResourceNotFound
from conftest import content


class Exchanges:
    """The (method, status) of every request a client made, from a requests response hook:
    what the client saw on the wire, without changing what it does."""

    def __init__(self):
        self.seen = []

    def hook(self, response, *args, **kwargs):
        self.seen.append((response.request.method, response.status_code))

    def last(self):
        return self.seen[-1]


@pytest.fixture
def exchanges():
    return Exchanges()


def client_for(pair, exchanges, token):
    return SyncFHIRClient(
        pair.edge_fhir, authorization=f"Bearer {token}",
        requests_config={"verify": pair.ca, "timeout": 10, "hooks": {"response": [exchanges.hook]}})


@pytest.fixture
def fhir(pair, exchanges):
    return client_for(pair, exchanges, pair.token(scope="user/*.cruds"))


def blood_glucose(patient_id, mg_dl):
    return {
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory", "display": "Laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0",
                             "display": "Glucose [Mass/volume] in Blood"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-01-01T11:00:00Z",
        "valueQuantity": {"value": mg_dl, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
    }


def test_reads_every_loaded_resource_by_reference(fhir, dataset):
    for loaded in dataset.untouched():
        resource = fhir.reference(loaded["resourceType"], loaded["id"]).to_resource()
        assert content(resource.serialize()) == content(loaded), f"{loaded['resourceType']}/{loaded['id']}"
        assert resource["meta"]["versionId"] == "1"


def test_search_by_patient_fetch_all_spans_pages(fhir, dataset, exchanges):
    page_size = 5
    for patient_id in dataset.read_patients:
        expected = dataset.ids_about("Observation", patient_id)
        before = len(exchanges.seen)
        found = fhir.resources("Observation").search(patient=patient_id).limit(page_size).fetch_all()
        assert len(found) == len(expected), "no resource is returned twice"
        assert {r.id for r in found} == expected
        pages = len(exchanges.seen) - before
        assert pages == -(-len(expected) // page_size) > 1, exchanges.seen[before:]


@pytest.mark.parametrize("resource_type", ["Condition", "DiagnosticReport", "Encounter", "MedicationRequest"])
def test_search_by_subject_for_each_clinical_type(fhir, dataset, resource_type):
    for patient_id in dataset.read_patients:
        found = fhir.resources(resource_type).search(subject=f"Patient/{patient_id}").limit(2).fetch_all()
        assert sorted(r.id for r in found) == sorted(dataset.ids_about(resource_type, patient_id))


def test_search_by_last_updated(fhir, dataset):
    patient_id = dataset.read_patients[0]
    loaded_at = {r["meta"]["lastUpdated"] for r in fhir.resources("Observation").search(patient=patient_id).fetch_all()}
    first, last = min(loaded_at), max(loaded_at)
    search = fhir.resources("Observation").search(patient=patient_id)
    assert {r.id for r in search.search(_lastUpdated__ge=first).limit(8).fetch_all()} == dataset.ids_about(
        "Observation", patient_id)
    assert search.search(_lastUpdated__lt=first).fetch_all() == []
    assert search.search(_lastUpdated__gt=last).fetch_all() == []


@pytest.mark.parametrize("parameter", ["status", "category", "code", "date"])
def test_a_filter_the_edge_cannot_apply_is_refused_or_applied(fhir, dataset, parameter):
    """Never a 200 with the unfiltered set: either the filter is applied or the search is refused."""
    patient_id = dataset.read_patients[0]
    own = dataset.ids_about("Observation", patient_id)
    value = {"status": "cancelled", "category": "no-such-category", "code": "no-such-code", "date": "1900-01-01"}[parameter]
    try:
        found = {r.id for r in fhir.resources("Observation").search(patient=patient_id, **{parameter: value}).limit(100).fetch_all()}
    except OperationOutcome:
        return  # refused (400), naming the parameter
    assert not found, f"{parameter}={value} matched {len(found)} of the patient's {len(own)} observations"


@pytest.mark.parametrize("modified", ["not", "chain"])
def test_search_with_a_modifier_is_refused_or_applied(fhir, dataset, modified):
    patient_id = dataset.read_patients[0]
    own = dataset.ids_about("Observation", patient_id)
    if modified == "not":
        search = fhir.resources("Observation").search(patient__not=patient_id)  # patient:not=ID
    else:
        family = dataset.get("Patient", patient_id)["name"][0]["family"]
        search = fhir.resources("Observation").search(subject__Patient__name=family)  # subject:Patient.name=FAMILY
    if modified == "chain":
        # Chains are supported (one level): applied, never refused.
        assert {r.id for r in search.limit(100).fetch_all()} == own
        return
    try:
        found = {r.id for r in search.limit(100).fetch_all()}
    except OperationOutcome:
        return  # refused (400): what FHIR asks of a server that does not support the modifier
    if modified == "not":
        assert found and not found & own, f"{len(found & own)} of the excluded patient's {len(own)} returned"
    else:
        assert found == own, f"{len(found)} returned, {len(own)} expected"


def test_sorted_date_range_search_and_include(fhir, dataset):
    """`date=ge…` with `_sort=-date` across pages, then `_include` of the performers."""
    # carebundle dates every observation alike: six readings a day apart (a code of their own), written through the edge.
    patient_id = dataset.write_patient
    for day in range(1, 7):
        fhir.resource("Observation", **{
            "status": "final", "subject": {"reference": f"Patient/{patient_id}"},
            "code": {"coding": [{"system": "urn:edgecache:interop", "code": "temperature-series", "display": "Body temperature"}]},
            "effectiveDateTime": f"2025-01-0{day}T08:00:00Z",
            "valueQuantity": {"value": 36 + day / 10, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"},
        }).save()
    search = fhir.resources("Observation").search(patient=patient_id, code="urn:edgecache:interop|temperature-series", date__ge="2025-01-04").sort("-date")
    deadline = time.monotonic() + 15
    found = search.limit(2).fetch_all()
    while len(found) < 3 and time.monotonic() < deadline:  # the edge answers once the stream has brought them
        time.sleep(0.2)
        found = search.limit(2).fetch_all()
    assert [r["effectiveDateTime"] for r in found] == ["2025-01-06T08:00:00Z", "2025-01-05T08:00:00Z", "2025-01-04T08:00:00Z"]
    early = fhir.resources("Observation").search(patient=patient_id, code="temperature-series", date__lt="2025-01-02").fetch_all()
    assert [r["effectiveDateTime"] for r in early] == ["2025-01-01T08:00:00Z"]

    reader = dataset.read_patients[0]
    own = [r for r in dataset.of_type("Observation") if r["subject"]["reference"] == f"Patient/{reader}"]
    bundle = fhir.resources("Observation").search(patient=reader).include("Observation", "performer").limit(100).fetch_raw()
    entries = bundle["entry"]
    included = {e["resource"]["id"] for e in entries if e["search"]["mode"] == "include"}
    performers = {p["reference"].split("/")[1] for r in own for p in r.get("performer", []) if p["reference"].startswith("Practitioner/")}
    assert performers and included == performers
    assert {e["resource"]["id"] for e in entries if e["search"]["mode"] == "match"} == {r["id"] for r in own}


def test_search_count_and_get_by_id(fhir, dataset):
    patient_id = dataset.read_patients[1]
    assert fhir.resources("Observation").search(patient=patient_id).count() == len(
        dataset.ids_about("Observation", patient_id))
    patient = fhir.resources("Patient").search(_id=patient_id).get()
    assert content(patient.serialize()) == content(dataset.get("Patient", patient_id))


def test_create_then_read_back_at_the_edge_and_the_origin(fhir, dataset, pair, exchanges):
    observation = fhir.resource("Observation", **blood_glucose(dataset.write_patient, 142))
    observation.save()
    assert exchanges.last() == ("POST", 201)
    assert observation.id and observation["meta"]["versionId"] == "1"
    back = fhir.reference("Observation", observation.id).to_resource()
    assert content(back.serialize()) == content(observation.serialize())
    at_origin = pair.origin.get(f"/fhir/Observation/{observation.id}")
    assert at_origin.status_code == 200
    assert content(at_origin.json()) == content(observation.serialize())


def test_update_raises_the_version(fhir, dataset, pair, exchanges):
    observation = fhir.resource("Observation", **blood_glucose(dataset.write_patient, 155))
    observation.save()
    observation["valueQuantity"]["value"] = 151
    observation["status"] = "corrected"
    observation.save()
    assert exchanges.last() == ("PUT", 200)
    assert observation["meta"]["versionId"] == "2"
    assert pair.edge.get(f"/fhir/Observation/{observation.id}").headers["ETag"] == 'W/"2"'
    at_origin = pair.origin.get(f"/fhir/Observation/{observation.id}")
    assert at_origin.headers["ETag"] == 'W/"2"'
    assert at_origin.json()["valueQuantity"]["value"] == 151


def test_refresh_is_a_conditional_read(fhir, dataset, exchanges):
    observation = fhir.resource("Observation", **blood_glucose(dataset.write_patient, 99))
    observation.save()
    observation.refresh()  # sends If-None-Match with the bare versionId
    assert exchanges.last() == ("GET", 304)
    assert observation["valueQuantity"]["value"] == 99


def test_update_of_a_loaded_condition_reaches_the_origin(fhir, dataset, pair):
    loaded_id = sorted(dataset.ids_about("Condition", dataset.write_patient))[0]
    condition = fhir.reference("Condition", loaded_id).to_resource()
    before = int(condition["meta"]["versionId"])
    condition["note"] = [{"text": "Reviewed at the edge during the interop run."}]
    condition.save()
    assert int(condition["meta"]["versionId"]) == before + 1
    at_origin = pair.origin.get(f"/fhir/Condition/{loaded_id}").json()
    assert at_origin["meta"]["versionId"] == str(before + 1)
    assert at_origin["note"] == [{"text": "Reviewed at the edge during the interop run."}]
    assert at_origin["code"] == dataset.get("Condition", loaded_id)["code"]


def test_delete_then_read_answers_gone(fhir, dataset, pair, exchanges):
    observation = fhir.resource("Observation", **blood_glucose(dataset.write_patient, 120))
    observation.save()
    observation.delete()
    assert exchanges.last() == ("DELETE", 204)
    # fhirpy raises ResourceNotFound for 404 and 410; the edge answers 410 for a deletion it holds.
    with pytest.raises(ResourceNotFound):
        fhir.reference("Observation", observation.id).to_resource()
    assert exchanges.last() == ("GET", 410)
    assert pair.origin.get(f"/fhir/Observation/{observation.id}").status_code == 410
    remaining = fhir.resources("Observation").search(patient=dataset.write_patient).limit(20).fetch_all()
    assert observation.id not in {r.id for r in remaining}


def test_patient_scoped_token_sees_only_its_compartment(pair, dataset, exchanges):
    patient_id = dataset.read_patients[2]
    other_id = dataset.read_patients[0]
    fhir = client_for(pair, exchanges, pair.token(scope="patient/*.rs", patient=patient_id))
    # No patient parameter: the edge limits the search to the token's compartment, across pages.
    found = fhir.resources("Observation").limit(10).fetch_all()
    assert {r.id for r in found} == dataset.ids_about("Observation", patient_id)
    with pytest.raises(ForbiddenError):
        fhir.reference("Observation", sorted(dataset.ids_about("Observation", other_id))[0]).to_resource()
    with pytest.raises(ForbiddenError):
        fhir.resource("Observation", **blood_glucose(patient_id, 101)).save()  # no 'c' scope


def test_async_client_reads_and_pages(pair, dataset):
    patient_id = dataset.read_patients[0]
    context = ssl.create_default_context(cafile=pair.ca)

    async def run():
        fhir = AsyncFHIRClient(pair.edge_fhir, authorization=f"Bearer {pair.token(scope='user/*.rs')}",
                               aiohttp_config={"ssl": context})
        patient = await fhir.reference("Patient", patient_id).to_resource()
        observations = await fhir.resources("Observation").search(patient=patient_id).limit(6).fetch_all()
        return patient, observations

    patient, observations = asyncio.run(run())
    assert content(patient.serialize()) == content(dataset.get("Patient", patient_id))
    assert {r.id for r in observations} == dataset.ids_about("Observation", patient_id)
