//! The OpenAPI 3.1 document of `/api/v1`, built from the route table
//! ([`access::ROUTES`](super::access::ROUTES)): every route there is in the document and
//! nothing else is (a test compares them). Parameters and bodies are described here, per
//! route id.

use serde_json::{Value, json};

use super::access::{PREFIX, ROUTES, RouteSpec};

fn q(name: &str, desc: &str, schema: Value, required: bool) -> Value {
    json!({"name": name, "in": "query", "required": required, "description": desc, "schema": schema})
}

fn p(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": desc, "schema": {"type": "string"}})
}

fn s() -> Value {
    json!({"type": "string"})
}

fn time(name: &str, desc: &str) -> Value {
    q(
        name,
        &format!(
            "{desc}: RFC 3339 with any offset (2026-11-23T10:15:00Z, 2026-11-23T18:15:00+08:00; encode the + as %2B) or a duration before now (90s, 10m, 2h, 1d)"
        ),
        s(),
        false,
    )
}

fn page() -> [Value; 2] {
    [
        q(
            "limit",
            "Rows per page (default api.page_size, at most api.max_page_size)",
            json!({"type": "integer", "minimum": 1}),
            false,
        ),
        q(
            "cursor",
            "The next_cursor of the previous page, as given",
            s(),
            false,
        ),
    ]
}

fn format() -> Value {
    q(
        "format",
        "json (default), geojson (a LineString per identity and a Point per sighting) or csv (next page cursor in X-Next-Cursor)",
        json!({"type": "string", "enum": ["json", "geojson", "csv"]}),
        false,
    )
}

/// The parameters of route `id`.
fn parameters(r: &RouteSpec) -> Vec<Value> {
    let mut v: Vec<Value> = match r.id {
        "tiles" => vec![
            json!({"name": "z", "in": "path", "required": true, "description": "Zoom level, 0..=30",
                "schema": {"type": "integer", "minimum": 0, "maximum": 30}}),
            json!({"name": "x", "in": "path", "required": true, "description": "Column from the west, 0..2^z",
                "schema": {"type": "integer", "minimum": 0}}),
            json!({"name": "y", "in": "path", "required": true,
                "description": "Row from the north (XYZ, as web maps ask; the MBTiles file's TMS rows are flipped by the server), 0..2^z; may end in the file's format suffix (.png, .jpg, .jpeg, .webp, .pbf, .mvt)",
                "schema": {"type": "string", "pattern": "^[0-9]+(\\.(png|jpg|jpeg|webp|pbf|mvt))?$"}}),
        ],
        "vehicles" => vec![
            q(
                "plate",
                "The plate (separators and case do not matter)",
                s(),
                true,
            ),
            q(
                "fuzzy",
                "Also plates one OCR-confusable character off",
                json!({"type": "boolean"}),
                false,
            ),
        ],
        "vehicles.trajectory" => {
            let mut v = vec![
                q("plate", "The plate", s(), true),
                q(
                    "fuzzy",
                    "Also plates one OCR-confusable character off",
                    json!({"type": "boolean"}),
                    false,
                ),
                time("from", "Only sightings overlapping the window from"),
                time("to", "… to (default now)"),
                format(),
            ];
            v.extend(page());
            v
        }
        "vehicles.id.trajectory" => {
            let mut v = vec![
                p("id", "The vehicle (V-12 or 12)"),
                time("from", "Only sightings overlapping the window from"),
                time("to", "… to (default now)"),
                format(),
            ];
            v.extend(page());
            v
        }
        "persons.trajectory" => {
            let mut v = vec![
                p(
                    "id",
                    "The person (P-12 or 12); a merged id gives its survivor's",
                ),
                time("from", "Only sightings overlapping the window from"),
                time("to", "… to (default now)"),
                format(),
            ];
            v.extend(page());
            v
        }
        "faces.search" => vec![
            q(
                "top",
                "Persons to return (1..=1000, default 10)",
                json!({"type": "integer"}),
                false,
            ),
            q(
                "min_similarity",
                "Cosine floor (-1..=1). Default: the verification threshold (the answer's threshold, watchlist.face_embedder.match_threshold): only matches; -1 lists the look-alikes below it too (\"match\": false)",
                json!({"type": "number", "minimum": -1, "maximum": 1}),
                false,
            ),
            time("from", "Only persons seen from"),
            time("to", "… to (default now)"),
        ],
        "links" => {
            let mut v = vec![
                q("person", "A person (P-12 or 12)", s(), false),
                q("plate", "Or a plate", s(), false),
            ];
            v.extend(page());
            v
        }
        "sightings" => {
            let mut v = vec![
                q("grid", "A grid (cameras' grid)", s(), false),
                q("bbox", "Or a box LAT1,LON1,LAT2,LON2", s(), false),
                time("from", "Window start (required)"),
                time("to", "Window end (default now)"),
                format(),
            ];
            v.extend(page());
            v
        }
        "alerts" => {
            let mut v = vec![
                q(
                    "open",
                    "Only alerts not acknowledged",
                    json!({"type": "boolean"}),
                    false,
                ),
                q(
                    "kind",
                    "loitering, face_watchlist or plate_watchlist",
                    s(),
                    false,
                ),
                time("since", "Only alerts last reported since"),
            ];
            v.extend(page());
            v
        }
        "alerts.ack" => vec![p("agent", "Agent id"), p("alert_id", "Alert id")],
        "alerts.evidence" => vec![
            p("agent", "Agent id"),
            p("alert_id", "Alert id"),
            p("role", "Evidence role (crop, frame)"),
        ],
        "evidence" => vec![p(
            "sha256",
            "SHA-256 of the image, 64 lowercase hex digits (a sighting's evidence_crop, an alert's evidence_refs)",
        )],
        "watchlist.plates.remove" => vec![p("plate", "The plate")],
        "watchlist.faces.remove" => vec![p("id", "Enrollment id")],
        "audit" => {
            let mut v = vec![
                time("from", "Entries from"),
                time("to", "Entries to"),
                q("who", "Only this token name", s(), false),
            ];
            v.extend(page());
            v
        }
        "tokens.revoke" => vec![p("name", "Token name")],
        _ => vec![],
    };
    if r.purpose {
        v.push(
            json!({"name": "X-Purpose", "in": "header", "required": true,
            "description": "Why this search is made (3..=200 characters, any script); UTF-8, raw (盗窃案调查) or percent-encoded (%E7%9B%97…, decoded when the value holds a %XX escape); audited decoded",
            "schema": {"type": "string", "minLength": 3, "maxLength": 200}}),
        );
        v.push(json!({"name": "X-Case", "in": "header", "required": true,
            "description": "Case reference (1..=64 characters: letters and digits of any script, . _ / - # : ( ) [ ], other non-ASCII marks such as 〔〕（）; no spaces); UTF-8, raw or percent-encoded; audited decoded",
            "schema": {"type": "string", "minLength": 1, "maxLength": 64}}));
    }
    v
}

fn body(id: &str) -> Option<Value> {
    let json_obj = |props: Value, required: Value| {
        json!({"required": true, "content": {"application/json": {"schema": {
            "type": "object", "properties": props, "required": required, "additionalProperties": false}}}})
    };
    Some(match id {
        "faces.search" => json!({"required": true, "content": {
            "image/jpeg": {"schema": {"type": "string", "contentMediaType": "image/jpeg"}},
            "image/png": {"schema": {"type": "string", "contentMediaType": "image/png"}},
            "application/json": {"schema": {"type": "object", "required": ["embedding"],
                "additionalProperties": false,
                "properties": {"embedding": {"type": "array", "items": {"type": "number"},
                    "description": "a query embedding of the embedding model (fusion.persons.embedding_dim values) instead of a photo"}}}}}}),
        "alerts.ack" => json_obj(
            json!({"note": {"type": "string", "maxLength": 1000}}),
            json!([]),
        ),
        "watchlist.plates.add" => json_obj(
            json!({"plate": {"type": "string"}, "reason": {"type": "string", "maxLength": 200}}),
            json!(["plate", "reason"]),
        ),
        "watchlist.faces.add" => {
            json!({"required": true, "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "properties": {
                "id": {"type": "string"}, "name": {"type": "string"},
                "role": {"type": "string", "enum": ["patient", "guardian"]},
                "consent": {"type": "string"},
                "of": {"type": "array", "items": {"type": "string"}},
                "contact": {"type": "array", "items": {"type": "string", "description": "NAME:PHONE"}},
                "photo": {"type": "array", "items": {"type": "string", "contentMediaType": "image/jpeg"}}},
            "required": ["id", "name", "role", "photo"]}}}})
        }
        "tokens.create" => json_obj(
            json!({"name": {"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$"},
                   "role": {"type": "string", "enum": ["viewer", "analyst", "enroller", "admin"]},
                   "expires": {"type": "string", "description": "A duration from now (30d)"}}),
            json!(["name", "role"]),
        ),
        _ => return None,
    })
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn obj(props: Value) -> Value {
    json!({"type": "object", "properties": props})
}

fn list_of(key: &str, item: Value) -> Value {
    obj(json!({key: {"type": "array", "items": item}, "next_cursor": {"type": ["string", "null"]}}))
}

/// The JSON a route answers with.
fn ok_schema(id: &str) -> Value {
    let sightings = |extra: Value| {
        let mut o = extra;
        o["sightings"] = json!({"type": "array", "items": r("Sighting")});
        o["next_cursor"] = json!({"type": ["string", "null"]});
        obj(o)
    };
    match id {
        "web_config" => obj(
            json!({"tile_url": {"type": "string", "description": "api.tile_url (used when tiles is null)"},
            "tile_attribution": {"type": "string"},
            "tiles": {"type": ["object", "null"],
                "description": "The offline basemap of api.tiles_file (null: none); use it instead of tile_url",
                "properties": {
                    "url": {"type": "string", "description": "/api/v1/tiles/{z}/{x}/{y}: an XYZ template, no token needed"},
                    "format": {"type": "string", "enum": ["png", "jpg", "webp", "pbf"]},
                    "minzoom": {"type": "integer"}, "maxzoom": {"type": "integer"},
                    "bounds": {"type": ["array", "null"], "items": {"type": "number"},
                        "description": "[west, south, east, north], degrees; null: not given"},
                    "attribution": {"type": "string"}}},
            "center": {"type": "array", "items": {"type": "number"}, "description": "[lat, lon]"},
            "zoom": {"type": "integer"},
            "time_zone": {"type": "string", "description": "The site's IANA time zone (api.time_zone), e.g. Asia/Shanghai"},
            "utc_offset_minutes": {"type": "integer", "description": "The site's offset from UTC now, minutes (480: UTC+8)"},
            "face_match_threshold": {"type": "number",
                "description": "Face search hits at or above this cosine similarity are matches (watchlist.face_embedder.match_threshold)"}}),
        ),
        "me" => obj(
            json!({"name": {"type": "string"}, "role": {"type": "string"},
            "expires_ms": {"type": ["integer", "null"]}}),
        ),
        "cameras" => obj(json!({"cameras": {"type": "array", "items": r("Camera")}})),
        "vehicles" => obj(
            json!({"plate": {"type": "string"}, "fuzzy": {"type": "boolean"},
            "vehicles": {"type": "array", "items": r("Vehicle")},
            "flags": {"type": "array", "items": r("Flag")}}),
        ),
        "vehicles.trajectory" => sightings(
            json!({"plate": {"type": "string"}, "fuzzy": {"type": "boolean"},
            "vehicles": {"type": "array", "items": r("Vehicle")},
            "flags": {"type": "array", "items": r("Flag")}}),
        ),
        "vehicles.id.trajectory" => sightings(json!({"vehicle": {"type": "integer"},
            "known": {"type": "boolean", "description": "false: no such vehicle"},
            "plate": {"type": ["string", "null"]}, "first_ms": {"type": ["integer", "null"]},
            "clone_of": {"type": "integer"},
            "flags": {"type": "array", "items": r("Flag")}})),
        "persons.trajectory" => sightings(json!({"person": {"type": "integer"},
            "resolved": {"type": ["integer", "null"], "description": "the surviving id; null: unknown person"}})),
        "sightings" => {
            sightings(json!({"from_ms": {"type": "integer"}, "to_ms": {"type": "integer"}}))
        }
        "faces.search" => obj(
            json!({"model": {"type": "string"}, "dim": {"type": "integer"},
            "threshold": {"type": "number", "description": "the verification threshold: a hit with at least this similarity is a match"},
            "min_similarity": {"type": "number", "description": "the floor applied (the threshold unless min_similarity was given)"},
            "faces": {"type": "integer"}, "persons": {"type": "integer"},
            "index": {"type": "string", "description": "which index answered: live (the running aggregator's), snapshot, or store (read for this search)"},
            "results": {"type": "array", "items": obj(json!({
                "rank": {"type": "integer"}, "person": {"type": "integer"},
                "similarity": {"type": "number"},
                "match": {"type": "boolean", "description": "similarity >= threshold: the same person by the embedder's operating point; false: not a match"},
                "face": {"type": "object"},
                "representatives": {"type": "integer"},
                "sightings": {"type": ["object", "null"], "description": "count, first and last seen"}}))}}),
        ),
        "links" => list_of("links", r("Link")),
        "alerts" => list_of("alerts", r("Alert")),
        "alerts.ack" => r("Ack"),
        "watchlist" => obj(
            json!({"faces": {"type": "array", "items": {"type": "object"}},
            "plates": {"type": "array", "items": {"type": "object"}}, "version": {"type": "integer"}}),
        ),
        "watchlist.plates.add" | "watchlist.plates.remove" => {
            obj(json!({"plate": {"type": "string"}, "version": {"type": "integer"}}))
        }
        "watchlist.faces.add" => obj(json!({"id": {"type": "string"}, "role": {"type": "string"},
            "photos": {"type": "integer"}, "version": {"type": "integer"}})),
        "audit" => list_of("entries", r("AuditEntry")),
        "tokens" => obj(json!({"tokens": {"type": "array", "items": r("Token")}})),
        "tokens.create" => obj(
            json!({"token": {"type": "string", "description": "se_…, shown only now"},
            "name": {"type": "string"}, "role": {"type": "string"},
            "created_ms": {"type": "integer"}, "expires_ms": {"type": ["integer", "null"]}}),
        ),
        "tokens.revoke" => {
            obj(json!({"name": {"type": "string"}, "revoked_ms": {"type": "integer"}}))
        }
        _ => json!({"type": "object"}),
    }
}

fn ok_content(id: &str) -> Value {
    match id {
        "alerts.stream" => json!({"text/event-stream": {"schema": {"type": "string",
            "description": "event: alert (data: an Alert), event: ack (data: an Ack); keep-alive comments; a last event: end (data: {\"reason\": …}) when the token is revoked or expires"}}}),
        "alerts.evidence" | "evidence" => {
            json!({"image/jpeg": {"schema": {"type": "string"}}, "image/png": {"schema": {"type": "string"}}})
        }
        "site" => json!({"application/geo+json": {"schema": {"type": "object"}}}),
        "tiles" => json!({
            "image/png": {"schema": {"type": "string"}},
            "image/jpeg": {"schema": {"type": "string"}},
            "image/webp": {"schema": {"type": "string"}},
            "application/x-protobuf": {"schema": {"type": "string",
                "description": "a vector tile; Content-Encoding: gzip when stored compressed"}}}),
        "vehicles.trajectory" | "vehicles.id.trajectory" | "persons.trajectory" | "sightings" => {
            json!({
            "application/json": {"schema": ok_schema(id)},
            "application/geo+json": {"schema": {"type": "object",
                "description": "FeatureCollection: a LineString per identity, a Point per sighting; next_cursor as a foreign member"}},
            "text/csv": {"schema": {"type": "string", "description": "next page cursor in X-Next-Cursor"}}})
        }
        _ => json!({"application/json": {"schema": ok_schema(id)}}),
    }
}

fn operation(r: &RouteSpec) -> Value {
    let problem =
        json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    let mut responses = serde_json::Map::new();
    let ok = if matches!(
        r.id,
        "watchlist.plates.add" | "watchlist.faces.add" | "tokens.create"
    ) {
        "201"
    } else {
        "200"
    };
    responses.insert(
        ok.into(),
        json!({"description": "OK", "content": ok_content(r.id)}),
    );
    responses.insert(
        "400".into(),
        json!({"description": "Bad request (or purpose-required)", "content": problem}),
    );
    responses.insert(
        "404".into(),
        json!({"description": "Not found", "content": problem}),
    );
    if !r.public() {
        responses.insert(
            "401".into(),
            json!({"description": "No, unknown, revoked or expired token", "content": problem}),
        );
        responses.insert(
            "403".into(),
            json!({"description": "The token's role may not", "content": problem}),
        );
        responses.insert(
            "429".into(),
            json!({"description": "Rate limited (Retry-After)", "content": problem}),
        );
    }
    if body(r.id).is_some() {
        responses.insert(
            "413".into(),
            json!({"description": "Body larger than api.max_body_bytes", "content": problem}),
        );
    }
    let roles: Vec<&str> = r.roles.iter().map(|r| r.as_str()).collect();
    let mut op = json!({
        "operationId": r.id,
        "summary": r.summary,
        "description": if r.public() {
            "No token needed.".to_string()
        } else {
            format!("Roles: {}.{} Audited.", roles.join(", "),
                if r.purpose { " Needs X-Purpose and X-Case." } else { "" })
        },
        "parameters": parameters(r),
        "responses": responses,
        "x-roles": roles,
    });
    if r.public() {
        op["security"] = json!([]);
    }
    if let Some(b) = body(r.id) {
        op["requestBody"] = b;
    }
    op
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for r in ROUTES {
        let e = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        e[r.method.to_ascii_lowercase()] = operation(r);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Sharp Eyes aggregator API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Trajectories, searches, sightings, alerts, watchlists and the audit log of a Sharp Eyes deployment. Bearer tokens (aggregator token create); every request is audited. Times are UTC milliseconds. Unknown or repeated query parameters are refused (400). Lists are paged: pass next_cursor back as cursor.",
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "se_… tokens from `aggregator token create`"}},
            "schemas": {
                "Problem": {"type": "object", "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"},
                    "status": {"type": "integer"}, "detail": {"type": "string"}},
                    "required": ["type", "title", "status", "detail"]},
                "Sighting": {"type": "object", "properties": {
                    "kind": {"type": "string", "enum": ["vehicle", "person"]},
                    "identity": {"type": "integer"}, "site": {"type": "string"},
                    "agent": {"type": "string"}, "camera": {"type": "string"},
                    "track": {"type": "integer"}, "class": {"type": "string"},
                    "first_ms": {"type": "integer"}, "last_ms": {"type": "integer"},
                    "lat": {"type": ["number", "null"]}, "lon": {"type": ["number", "null"]},
                    "confidence": {"type": "number"}, "ended": {"type": "boolean"},
                    "plate": {"type": "string"}, "why": {},
                    "evidence": {"type": "string", "description": "the track: agent/camera/track"},
                    "evidence_crop": {"type": ["string", "null"],
                        "description": "SHA-256 of the track's best shot: GET /evidence/{sha256}"}}},
                "Camera": {"type": "object", "properties": {
                    "site": {"type": "string"}, "agent": {"type": "string"}, "camera": {"type": "string"},
                    "lat": {"type": "number"}, "lon": {"type": "number"},
                    "heading_deg": {"type": ["number", "null"]}, "fov_deg": {"type": ["number", "null"]},
                    "grid": {"type": ["string", "null"]},
                    "online": {"type": ["boolean", "null"], "description": "null: no status from its agent yet"}}},
                "Vehicle": {"type": "object", "properties": {
                    "vehicle": {"type": "integer"}, "plate": {"type": "string"}, "first_ms": {"type": "integer"},
                    "clone_of": {"type": "integer"},
                    "matched": {"type": "string", "enum": ["exact", "reading", "confusable"]}}},
                "Flag": {"type": "object", "properties": {
                    "vehicle": {"type": "integer"}, "other": {"type": "integer"}, "plate": {"type": "string"},
                    "other_plate": {"type": "string"},
                    "reason": {"type": "string", "enum": ["possible_clone", "near_plate_apart"]},
                    "gate": {}, "evidence": {"type": "string"}, "ts_ms": {"type": "integer"}}},
                "Link": {"type": "object", "properties": {
                    "person": {"type": "integer"}, "vehicle": {"type": "integer"}, "plate": {"type": "string"},
                    "count": {"type": "integer"}, "strength": {"type": "number"},
                    "first_ms": {"type": "integer"}, "last_ms": {"type": "integer"},
                    "evidence": {"type": "array", "items": {}}}},
                "Alert": {"type": "object", "properties": {
                    "agent": {"type": "string"}, "alert_id": {"type": "string"}, "site": {"type": "string"},
                    "camera": {"type": "string"},
                    "kind": {"type": "string", "enum": ["loitering", "face_watchlist", "plate_watchlist"]},
                    "priority": {"type": "string", "enum": ["low", "normal", "high"]},
                    "first_ms": {"type": "integer"}, "last_ms": {"type": "integer"},
                    "sightings": {"type": "integer"}, "track": {"type": "integer"},
                    "summary": {"type": "string"},
                    "details": {"type": "object", "additionalProperties": {"type": "string"}},
                    "evidence": {"type": "array", "items": {"type": "string"},
                        "description": "roles of the evidence images: GET /alerts/{agent}/{alert_id}/evidence/{role}"},
                    "evidence_refs": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "role → SHA-256 of the image: GET /evidence/{sha256}"},
                    "received_ms": {"type": "integer"}, "acked_ms": {"type": "integer"},
                    "acked_by": {"type": "string"}, "ack_note": {"type": "string"}}},
                "Ack": {"type": "object", "properties": {
                    "agent": {"type": "string"}, "alert_id": {"type": "string"}, "acked_by": {"type": "string"},
                    "acked_ms": {"type": "integer"}, "note": {"type": "string"}}},
                "AuditEntry": {"type": "object", "properties": {
                    "seq": {"type": "integer"}, "ts_ms": {"type": "integer"}, "who": {"type": "string"},
                    "role": {"type": "string"}, "action": {"type": "string", "description": "the route's operationId"},
                    "purpose": {"type": ["string", "null"]}, "case_ref": {"type": ["string", "null"]},
                    "params_json": {"type": "string"}, "result_count": {"type": ["integer", "null"]},
                    "status": {"type": "integer"}, "prev_hash": {"type": "string"}, "hash": {"type": "string"}}},
                "Token": {"type": "object", "properties": {
                    "name": {"type": "string"}, "role": {"type": "string"}, "created_ms": {"type": "integer"},
                    "expires_ms": {"type": ["integer", "null"]}, "revoked_ms": {"type": ["integer", "null"]}}},
            },
        },
    })
}
