"""The OpenAPI 3.1 document of the admin API (:mod:`conveyor.server.admin`), by hand.

Served at ``GET /api/v1/openapi.json``. Response schemas are closed
(``additionalProperties: false``, every field required) so that the tests, which check
each answer against this document, notice a field added on one side only.
"""

from __future__ import annotations

from typing import Any

from conveyor import __version__, limits

_QUEUE_NAME = r"^[A-Za-z0-9_-]{1,80}$|^[A-Za-z0-9_-]{1,75}\.fifo$"


def _obj(props: dict[str, Any], *, required: list[str] | None = None) -> dict[str, Any]:
    """A closed object schema; every property required unless ``required`` says which."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        "additionalProperties": False,
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_INT = {"type": "integer", "minimum": 0}
_NUM = {"type": "number", "minimum": 0}
_STR = {"type": "string"}


def _json_response(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*statuses: str) -> dict[str, Any]:
    return {s: {"$ref": f"#/components/responses/{_ERROR_NAMES[s]}"} for s in statuses}


_ERROR_NAMES = {
    "400": "BadRequest",
    "403": "Forbidden",
    "404": "NotFound",
    "405": "MethodNotAllowed",
    "409": "Conflict",
    "415": "UnsupportedMediaType",
    "429": "QueueFull",
    "503": "Unavailable",
}
_ERROR_TEXT = {
    "400": "Bad input (code names what: InvalidParameterValue, MissingParameter, "
    "MalformedJson, MessageTooLong, ...). Nothing was changed.",
    "403": "A web page of another origin asked for a change (AccessDenied): browsers may "
    "change the node only from its own pages. Clients that send no Origin header are not "
    "affected.",
    "404": "No such queue (QueueDoesNotExist) or resource (NotFound).",
    "405": "The path exists but not with this method (MethodNotAllowed); see Allow.",
    "409": "Conflicts with the queue's state (PurgeQueueInProgress: one purge per 60 s).",
    "415": "The body is not application/json (UnsupportedMediaType).",
    "429": "The queue is at its max depth and its overflow policy is reject (QueueFull); "
    "retry later.",
    "503": "The node cannot serve this now (Unavailable); retry later.",
}

_RATE_TEXT = (
    "Per second since the previous point; null on a queue's first point and after its "
    "counters were reset."
)
_rate = _nullable({**_NUM, "description": _RATE_TEXT})
_since_param = {
    "name": "since_ms",
    "in": "query",
    "required": False,
    "description": "Only points taken after this time (ms since the epoch): what a poller "
    "has not seen yet. Default 0: every point kept.",
    "schema": {"type": "integer", "minimum": 0, "maximum": 9_999_999_999_999_999, "default": 0},
}

_queue_param = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "Queue name.",
    "schema": {"type": "string", "pattern": _QUEUE_NAME},
}

_stats_props = {
    "messages": _INT,
    "bytes": _INT,
    "visible": _INT,
    "inflight": _INT,
    "delayed": _INT,
    "visible_bytes": _INT,
    "inflight_bytes": _INT,
    "delayed_bytes": _INT,
    "oldest_age_s": _NUM,
}

_schemas: dict[str, Any] = {
    "Error": _obj(
        {
            "error": _obj(
                {
                    "code": {"type": "string", "description": "Stable error code."},
                    "message": {"type": "string", "description": "What went wrong."},
                }
            )
        }
    ),
    "Stats": _obj(
        {**_stats_props, "parked_receives": _INT},
    ),
    "Partition": _obj(
        {
            "index": _INT,
            **{k: v for k, v in _stats_props.items() if k not in ("messages", "bytes")},
            "log_bytes": _INT,
            "log_segments": _INT,
        }
    ),
    "QueueSummary": _obj(
        {
            "name": _STR,
            "fifo": {"type": "boolean"},
            "partitions": {"type": "integer", "minimum": 1},
            "dead_letter_queue": _nullable(_STR),
            "stats": _ref("Stats"),
        }
    ),
    "QueueList": _obj({"queues": {"type": "array", "items": _ref("QueueSummary")}}),
    "RedrivePolicy": _obj(
        {
            "dead_letter_queue": _STR,
            "max_receive_count": {"type": "integer", "minimum": limits.max_receive_count_min},
        }
    ),
    "QueueConfig": _obj(
        {
            "fifo": {"type": "boolean"},
            "max_message_bytes": _INT,
            "max_depth_messages": {**_INT, "description": "0: unbounded"},
            "max_depth_bytes": {**_INT, "description": "0: unbounded"},
            "overflow": {"enum": ["reject", "drop_oldest"]},
            "retention_s": _INT,
            "visibility_timeout_s": _INT,
            "delay_s": _INT,
            "receive_wait_s": _INT,
            "redrive": _nullable(_ref("RedrivePolicy")),
            "content_dedup": {"type": "boolean"},
            "dedup_scope": {"enum": ["queue", "message_group"]},
            "partitions": {"type": "integer", "minimum": 1},
        }
    ),
    "QueueDetail": _obj(
        {
            "name": _STR,
            "uid": _STR,
            "created_ms": _INT,
            "modified_ms": _INT,
            "config": _ref("QueueConfig"),
            "tags": {"type": "object", "additionalProperties": _STR},
            "stats": _ref("Stats"),
            "partitions": {"type": "array", "items": _ref("Partition")},
            "dead_letter_sources": {
                "type": "array",
                "items": _STR,
                "description": "Queues whose redrive policy sends dead letters here.",
            },
        }
    ),
    "AttributeIn": _obj(
        {
            "data_type": {
                "type": "string",
                "pattern": r"^(String|Number|Binary)(\..+)?$",
                "maxLength": limits.attribute_type_length_max,
                "description": "String, Number or Binary, optionally with a .suffix.",
            },
            "string_value": _nullable(_STR),
            "binary_value": _nullable({"type": "string", "contentEncoding": "base64"}),
        },
        required=["data_type"],
    ),
    "AttributeOut": _obj(
        {
            "data_type": _STR,
            "string_value": _nullable(_STR),
            "binary_value": _nullable({"type": "string", "contentEncoding": "base64"}),
        }
    ),
    "Message": _obj(
        {
            "message_id": _STR,
            "body": _STR,
            "body_encoding": {
                "enum": ["text", "base64"],
                "description": "text: the body is UTF-8; base64: it is not, and is encoded.",
            },
            "attributes": {"type": "object", "additionalProperties": _ref("AttributeOut")},
            "system": {"type": "object", "additionalProperties": _STR},
            "sent_ms": _INT,
            "receive_count": _INT,
            "first_receive_ms": {**_INT, "description": "0: never received"},
            "group_id": _nullable(_STR),
            "dedup_id": _nullable(_STR),
            "sequence_number": _nullable(_STR),
        }
    ),
    "MessageList": _obj({"messages": {"type": "array", "items": _ref("Message")}}),
    "SendRequest": _obj(
        {
            "body": {"type": "string", "minLength": 1, "description": "The message body."},
            "attributes": _nullable(
                {
                    "type": "object",
                    "maxProperties": limits.message_attributes_max,
                    "additionalProperties": _ref("AttributeIn"),
                }
            ),
            "delay_s": _nullable(
                {"type": "integer", "minimum": limits.delay_s_min, "maximum": limits.delay_s_max}
            ),
            "group_id": _nullable(
                {"type": "string", "minLength": 1, "maxLength": limits.group_id_length_max}
            ),
            "dedup_id": _nullable(
                {"type": "string", "minLength": 1, "maxLength": limits.dedup_id_length_max}
            ),
        },
        required=["body"],
    ),
    "SendResult": _obj(
        {
            "message_id": _STR,
            "sequence_number": _nullable(_STR),
            "duplicate": {
                "type": "boolean",
                "description": "A FIFO resend inside the deduplication window.",
            },
        }
    ),
    "PurgeResult": _obj({"queue": _STR, "purged": {"const": True}}),
    "RedriveRequest": _obj(
        {
            "destination": _nullable(
                {
                    **_STR,
                    "description": "Where to move the messages; default: back to the queue "
                    "each one came from.",
                }
            ),
            "max_messages": _nullable({"type": "integer", "minimum": 1}),
        },
        required=[],
    ),
    "RedriveResult": _obj({"queue": _STR, "destination": _nullable(_STR), "moved": _INT}),
    "HistoryPoint": _obj(
        {
            "t_ms": {**_INT, "description": "When the sample was taken, ms since the epoch."},
            "messages": _INT,
            "visible": _INT,
            "inflight": _INT,
            "delayed": _INT,
            "bytes": _INT,
            "oldest_age_s": _NUM,
            "sent_per_s": _rate,
            "received_per_s": _rate,
            "deleted_per_s": _rate,
            "redelivered_per_s": _rate,
            "dead_lettered_per_s": _rate,
            "expired_per_s": _rate,
            "redriven_per_s": _rate,
        }
    ),
    "QueueHistory": _obj(
        {
            "queue": _STR,
            "interval_s": {"type": "number", "exclusiveMinimum": 0},
            "points_max": {"type": "integer", "minimum": 1},
            "points": {
                "type": "array",
                "items": _ref("HistoryPoint"),
                "description": "Oldest first, one every interval_s, at most points_max.",
            },
        }
    ),
    "History": _obj({"queues": {"type": "array", "items": _ref("QueueHistory")}}),
    "Node": _obj(
        {
            "node_id": _STR,
            "version": _STR,
            "started_ms": _INT,
            "uptime_s": _NUM,
            "data_dir": _STR,
            "fsync": {"enum": ["always", "interval", "never"]},
            "http_address": _STR,
            "native_address": _STR,
            "queues": _INT,
            "pid": _INT,
        }
    ),
    "ClusterNode": _obj(
        {
            "id": {**_STR, "description": "The node's --node-id."},
            "http": {**_STR, "description": "host:port of its HTTP port (SQS, admin API)."},
            "native": {**_STR, "description": "host:port of its native protocol."},
            "lease": _nullable({"type": "integer", "description": "Its coordinator lease."}),
            "lease_hex": _nullable(
                {
                    "type": "string",
                    "pattern": "^-?[0-9a-f]+$",
                    "description": "The lease in hex, as etcdctl shows it (a lease id "
                    "does not fit a JavaScript number exactly).",
                }
            ),
            "replicas": {**_INT, "description": "Partition replicas it holds."},
        }
    ),
    "ClusterReplica": _obj(
        {
            "role": {
                "enum": ["leader", "follower", "catching-up", "fenced"],
                "description": "follower: in the ISR; catching-up: replicating, not in "
                "the ISR (yet); fenced: may not act.",
            },
            "log_end": {**_INT, "description": "Offset after the last record in its log."},
            "commit": {**_INT, "description": "Offset up to which records are committed."},
            "durable_end": {**_INT, "description": "Offset up to which its log is on disk."},
        }
    ),
    "ClusterPartition": _obj(
        {
            "queue": _STR,
            "partition": {**_INT, "description": "The partition's index in its queue."},
            "name": {**_STR, "description": "The replicated partition's name (uid-pN)."},
            "replicas": {"type": "array", "items": _STR},
            "leader": _nullable(_STR),
            "epoch": _INT,
            "isr": {
                "type": "array",
                "items": _STR,
                "description": "In-sync replicas: the leader and the followers that keep "
                "up with it; only they can be elected.",
            },
            "local": {
                **_ref("ClusterReplica"),
                "description": "The answering node's replica; absent when it has none.",
            },
        },
        required=["queue", "partition", "name", "replicas", "leader", "epoch", "isr"],
    ),
    "Cluster": _obj(
        {
            "node": {**_STR, "description": "The answering node."},
            "controller": _nullable({**_STR, "description": "The node running the controller."}),
            "nodes": {
                "type": "array",
                "items": _ref("ClusterNode"),
                "description": "The live nodes (holding a lease), by id.",
            },
            "partitions": {
                "type": "array",
                "items": _ref("ClusterPartition"),
                "description": "Every partition of every queue, by queue name.",
            },
        }
    ),
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Conveyor admin API",
        "version": __version__,
        "description": "Inspect and operate a Conveyor node: queues and their stats, their "
        "last 15 minutes, peek, send, purge, dead-letter redrive, node information, the "
        "cluster's nodes and partitions. Errors are "
        '{"error": {"code", "message"}}; a 4xx answer changed nothing.',
    },
    "paths": {
        "/api/v1/queues": {
            "get": {
                "operationId": "listQueues",
                "summary": "Every queue with its stats",
                "responses": {
                    "200": _json_response("The queues, by name.", "QueueList"),
                    **_errors("503"),
                },
            }
        },
        "/api/v1/queues/{name}": {
            "parameters": [_queue_param],
            "get": {
                "operationId": "getQueue",
                "summary": "One queue: configuration, tags, stats per partition",
                "responses": {
                    "200": _json_response("The queue.", "QueueDetail"),
                    **_errors("404", "503"),
                },
            },
        },
        "/api/v1/queues/{name}/messages": {
            "parameters": [_queue_param],
            "get": {
                "operationId": "peekMessages",
                "summary": "The oldest live messages, without receiving them",
                "description": "Changes nothing: no receive count, no visibility change.",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 100,
                            "default": 10,
                        },
                    }
                ],
                "responses": {
                    "200": _json_response("The messages, oldest first.", "MessageList"),
                    **_errors("400", "404", "503"),
                },
            },
            "post": {
                "operationId": "sendMessage",
                "summary": "Send one message",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SendRequest")}},
                },
                "responses": {
                    "200": _json_response("Sent (durable).", "SendResult"),
                    **_errors("400", "403", "404", "415", "429", "503"),
                },
            },
        },
        "/api/v1/queues/{name}/purge": {
            "parameters": [_queue_param],
            "post": {
                "operationId": "purgeQueue",
                "summary": "Delete every message in the queue",
                "responses": {
                    "200": _json_response("Purged.", "PurgeResult"),
                    **_errors("400", "403", "404", "409", "503"),
                },
            },
        },
        "/api/v1/queues/{name}/redrive": {
            "parameters": [_queue_param],
            "post": {
                "operationId": "redriveQueue",
                "summary": "Move a dead-letter queue's visible messages back",
                "description": "To the queue each message came from, or to destination. "
                "Receive counts start again at 0.",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("RedriveRequest")}},
                },
                "responses": {
                    "200": _json_response("Moved.", "RedriveResult"),
                    **_errors("400", "403", "404", "415", "503"),
                },
            },
        },
        "/api/v1/queues/{name}/history": {
            "parameters": [_queue_param],
            "get": {
                "operationId": "getQueueHistory",
                "summary": "The queue's last 15 minutes: depth, age, rates",
                "description": "Sampled by the node every interval_s (5 s), kept in memory "
                "(points_max points), lost when the node restarts.",
                "parameters": [_since_param],
                "responses": {
                    "200": _json_response("The points, oldest first.", "QueueHistory"),
                    **_errors("400", "404", "503"),
                },
            },
        },
        "/api/v1/history": {
            "get": {
                "operationId": "getHistory",
                "summary": "The last 15 minutes of every queue",
                "parameters": [_since_param],
                "responses": {
                    "200": _json_response("Every queue's points, by queue name.", "History"),
                    **_errors("400", "503"),
                },
            }
        },
        "/api/v1/node": {
            "get": {
                "operationId": "getNode",
                "summary": "This node",
                "responses": {"200": _json_response("The node.", "Node")},
            }
        },
        "/api/v1/cluster": {
            "get": {
                "operationId": "getCluster",
                "summary": "Cluster mode: nodes, partitions, leaders, ISR and lag",
                "description": "As the answering node sees them (its cache of the "
                "coordinator); local is that node's own replica of each partition. A node "
                "that is not in a cluster answers 404 NotFound.",
                "responses": {
                    "200": _json_response("The cluster.", "Cluster"),
                    **_errors("404"),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
    "components": {
        "schemas": _schemas,
        "responses": {
            name: {"description": _ERROR_TEXT[status], **_json_response("", "Error")}
            | {"description": _ERROR_TEXT[status]}
            for status, name in _ERROR_NAMES.items()
        },
    },
}
