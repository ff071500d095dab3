"""The OpenAPI 3.1 document of the HTTP API, built from the pydantic models
the views validate and answer with, so it cannot drift from them. Served at
``/openapi.json``; the tests check the running API against it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from processor.web.models import (
    AckRequest,
    ErrorBody,
    Health,
    OpportunityView,
    Readiness,
    SnoozeRequest,
    StageGateRequest,
    StageGateResult,
)
from schemas import AlertStatus, Digest
from schemas.forecast import OverrideRequest

API_VERSION = "1.0.0"
_REF = "#/components/schemas/{model}"

_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (StageGateRequest, "validation"),
    (StageGateResult, "serialization"),
    (OpportunityView, "serialization"),
    (ErrorBody, "serialization"),
    (Health, "serialization"),
    (Readiness, "serialization"),
    (Digest, "serialization"),
    (SnoozeRequest, "validation"),
    (AckRequest, "validation"),
    (AlertStatus, "serialization"),
    (OverrideRequest, "validation"),
    (OverrideRequest, "serialization"),
]


def _json(ref: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def document() -> dict[str, Any]:
    refs, top = models_json_schema(_MODELS, ref_template=_REF)

    def ref(model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        return refs[(model, mode)]

    error = ref(ErrorBody)

    def errors(*codes: int) -> dict[str, Any]:
        why = {
            400: "Bad JSON, or a body that does not match the request schema.",
            401: "Missing or wrong bearer token.",
            404: "Not found.",
            413: "Body larger than HYGIENE_API_MAX_BODY_BYTES.",
            422: "The action cannot be recorded as asked (a snooze expiry not in the future).",
            503: "No API token configured (the API fails closed); the owner of the key "
                 "cannot answer right now (rebalancing; retry); for alerts: the alert policy "
                 "is off or Redis does not answer.",
        }
        return {str(code): _json(error, why[code]) for code in codes}

    public: list[dict[str, list[str]]] = []
    paths: dict[str, Any] = {
        "/healthz": {"get": {
            "operationId": "healthz", "summary": "Liveness", "security": public,
            "responses": {"200": _json(ref(Health), "The process is up.")},
        }},
        "/readyz": {"get": {
            "operationId": "readyz", "summary": "Readiness: state recovered", "security": public,
            "responses": {
                "200": _json(ref(Readiness), "Recovery is done; the worker serves its state."),
                "503": _json(ref(Readiness), "Recovering or rebalancing."),
            },
        }},
        "/metrics": {"get": {
            "operationId": "metrics", "summary": "Prometheus metrics", "security": public,
            "responses": {"200": {"description": "Prometheus text format.",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document",
            "responses": {"200": _json({"type": "object"}, "The OpenAPI document."),
                          **errors(401, 503)},
        }},
        "/v1/stage-gate/check": {"post": {
            "operationId": "checkStageGate",
            "summary": "Would this stage move pass the gate?",
            "description": "For a CRM's before-save hook: answers 200 when the proposed stage "
            "move passes the stage's entry criteria and 422 (same body) with the missing and "
            "filler fields when it does not, so the hook can reject the save. The fields sent "
            "are laid over the opportunity's stored state.",
            "requestBody": _body(ref(StageGateRequest, "validation")),
            "responses": {
                "200": _json(ref(StageGateResult), "The move passes the gate."),
                "422": _json(ref(StageGateResult),
                             "The move does not pass: missing or filler fields, or an unknown "
                             "stage."),
                **errors(400, 401, 413, 503),
            },
        }},
        "/v1/opportunities/{opportunity_id}": {"get": {
            "operationId": "getOpportunity",
            "summary": "An opportunity's current state and open alerts",
            "description": "Answered by the worker that owns the opportunity's partition; any "
            "worker may be asked and forwards to the owner.",
            "parameters": [_path_param("opportunity_id")],
            "responses": {
                "200": _json(ref(OpportunityView), "The opportunity."),
                **errors(401, 404, 503),
            },
        }},
        "/v1/queues/{owner_id}": {"get": {
            "operationId": "getOwnerQueue",
            "summary": "An owner's current hygiene queue",
            "description": "What the owner should fix on their open opportunities, biggest "
            "deals first: the digest of the current week as it stands now (no items when there "
            "is nothing to fix). Answered by the worker that owns the owner's partition; any "
            "worker may be asked and forwards.",
            "parameters": [_path_param("owner_id")],
            "responses": {
                "200": _json(ref(Digest), "The owner's queue."),
                **errors(401, 404, 503),
            },
        }},
        "/v1/alerts/{alert_id}": {"get": {
            "operationId": "getAlertStatus",
            "summary": "What the alert policy knows of an alert",
            "description": "Delivery (realtime, digest, suppressed), snoozes and "
            "acknowledgements. Alert state is shared in Redis: any worker answers.",
            "parameters": [_path_param("alert_id")],
            "responses": {"200": _json(ref(AlertStatus), "The alert's status."),
                          **errors(401, 404, 503)},
        }},
        "/v1/alerts/{alert_id}/snooze": {"post": {
            "operationId": "snoozeAlert",
            "summary": "Snooze an alert",
            "description": "Until it expires, later alerts for the same opportunity and rule "
            "go to the digest only. Give the expiry as until or as hours from now.",
            "parameters": [_path_param("alert_id")],
            "requestBody": _body(ref(SnoozeRequest, "validation")),
            "responses": {"200": _json(ref(AlertStatus), "Recorded; the alert's status."),
                          **errors(400, 401, 404, 413, 422, 503)},
        }},
        "/v1/forecast/overrides": {"post": {
            "operationId": "submitOverride",
            "summary": "Submit a manager's forecast override",
            "description": "Validated here (a reason is required, not blank), then put on "
            "forecast.overrides keyed by manager. Whether the manager and period are known "
            "is decided on the manager's partition: the outcome is a forecast.override-log "
            "record or a dead letter. override_id and submitted_at are filled in when "
            "absent; an amount of null withdraws the standing override.",
            "requestBody": _body(ref(OverrideRequest, "validation")),
            "responses": {"202": _json(ref(OverrideRequest), "Accepted for the manager's "
                                       "partition; the override as submitted."),
                          **errors(400, 401, 413, 422)},
        }},
        "/v1/alerts/{alert_id}/ack": {"post": {
            "operationId": "ackAlert",
            "summary": "Acknowledge an alert",
            "description": "The first acknowledgement is kept (who, when); later ones are "
            "logged in the alert's actions. 422 invalid_action when `by` is blank once "
            "trimmed (Python's notion of whitespace, wider than JSON Schema's).",
            "parameters": [_path_param("alert_id")],
            "requestBody": _body(ref(AckRequest, "validation")),
            "responses": {"200": _json(ref(AlertStatus), "Recorded; the alert's status."),
                          **errors(400, 401, 404, 413, 422, 503)},
        }},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "revops-hygiene worker API",
            "version": API_VERSION,
            "description": "Served by every worker. Everything but /healthz, /readyz and "
            "/metrics needs Authorization: Bearer <HYGIENE_API_TOKEN>. Errors are "
            '{"error": code, "message": text}.',
        },
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }
