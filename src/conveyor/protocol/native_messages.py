"""Every message of the native protocol, as typed msgspec Structs.

Each frame body is one msgpack map whose ``op`` key names the message. Requests carry
an ``id`` chosen by the client; the response to a request has the same ``op`` and the
same ``id`` (or is an ``ErrorResponse`` with that ``id``). Field names are snake_case,
as in the embedded broker's API. Fields equal to their default are left out of the
encoding, and a receiver ignores map keys it does not know, so a later version can add
optional fields without breaking an older peer (see ``docs/native-protocol.md``).

The checks done here are structural: types, required fields, the number of entries in
a batch, the range of ``max_messages``. Whether a queue name or an attribute is valid
is the broker's business.

The bounds of the wire format are defined here, named with their unit last and checked
against :mod:`conveyor.limits` at import time.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, TypeAlias, get_args

import msgspec
from msgspec import Meta

from conveyor import errors, limits
from conveyor.protocol.native_errors import PROTOCOL_ERROR_CODES, ProtocolError

# --- bounds of the wire format -------------------------------------------------------
PROTOCOL_VERSION = 1  # the newest version this code speaks
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)  # every version this code speaks
protocol_version_max = 65_535
hello_versions_max = 16  # how many versions a Hello may offer

request_id_max = 2**32 - 1  # request ids are u32; a client reuses them once answered

# A frame (its body, without the 4-byte length prefix) must hold at least one message
# of the largest size any queue accepts, with its attributes (record_bytes_max covers
# body + attributes), plus the envelope of a receive response (ids, receipt handle).
frame_bytes_min = 2 * limits.MiB
# Default limit: 16 maximal (1 MiB) messages, or a full native batch
# (native_batch_entries_max = 1000) of messages up to ~16 KiB each, in one frame. A
# client splits a larger batch by bytes. This is also the most a connection buffers.
frame_bytes_default = 16 * limits.message_size_bytes_max
# The largest limit a connection may be configured with: 1000 messages of 256 KiB
# (the default queue maximum). The u32 length prefix could say 4 GiB.
frame_bytes_max = 256 * limits.MiB

inflight_requests_default = 1024  # pipelined requests a server accepts per connection
inflight_requests_max = 65_536

client_name_length_max = 256
auth_token_length_max = 4096
list_queues_limit_max = 1000
list_queues_limit_default = 1000
peek_messages_default = 10

assert limits.record_bytes_max + 64 * limits.KiB <= frame_bytes_min
assert frame_bytes_min <= frame_bytes_default <= frame_bytes_max < 2**32
assert 1 <= inflight_requests_default <= inflight_requests_max <= request_id_max
assert PROTOCOL_VERSION in SUPPORTED_VERSIONS
assert all(1 <= v <= protocol_version_max for v in SUPPORTED_VERSIONS)
assert len(SUPPORTED_VERSIONS) <= hello_versions_max

RequestId = Annotated[int, Meta(ge=0, le=request_id_max)]
Version = Annotated[int, Meta(ge=1, le=protocol_version_max)]
FrameBytes = Annotated[int, Meta(ge=frame_bytes_min, le=frame_bytes_max)]
InflightMax = Annotated[int, Meta(ge=1, le=inflight_requests_max)]
ReceiveCount = Annotated[int, Meta(ge=1, le=limits.native_receive_messages_max)]
ListLimit = Annotated[int, Meta(ge=1, le=list_queues_limit_max)]

__all__ = [
    "OPS",
    "PROTOCOL_VERSION",
    "REQUEST_TYPES",
    "RESPONSE_FOR",
    "RESPONSE_TYPES",
    "SUPPORTED_VERSIONS",
    "AnyRequest",
    "AnyResponse",
    "ChangeVisibilityBatchRequest",
    "ChangeVisibilityBatchResponse",
    "ChangeVisibilityRequest",
    "ChangeVisibilityResponse",
    "ClientMessage",
    "CreateQueueRequest",
    "CreateQueueResponse",
    "DeleteBatchRequest",
    "DeleteBatchResponse",
    "DeleteQueueRequest",
    "DeleteQueueResponse",
    "DeleteRequest",
    "DeleteResponse",
    "ErrorInfo",
    "ErrorResponse",
    "GetQueueRequest",
    "GetQueueResponse",
    "Hello",
    "ListQueuesRequest",
    "ListQueuesResponse",
    "Message",
    "MessageAttribute",
    "PeekRequest",
    "PeekResponse",
    "PingRequest",
    "PingResponse",
    "PurgeQueueRequest",
    "PurgeQueueResponse",
    "ReceiveRequest",
    "ReceiveResponse",
    "RedriveRequest",
    "RedriveResponse",
    "ReplicateRequest",
    "ReplicateResponse",
    "ClusterStatusRequest",
    "ClusterStatusResponse",
    "MoveInRequest",
    "MoveInResponse",
    "DrainNodeRequest",
    "DrainNodeResponse",
    "Request",
    "Response",
    "SendBatchRequest",
    "SendBatchResponse",
    "SendEntry",
    "SendRequest",
    "SendResponse",
    "SendResult",
    "ServerMessage",
    "SetQueueRequest",
    "SetQueueResponse",
    "TagQueueRequest",
    "TagQueueResponse",
    "VisibilityEntry",
    "Welcome",
    "error_info",
    "error_response",
    "frame_bytes_default",
    "frame_bytes_max",
    "frame_bytes_min",
    "inflight_requests_default",
    "inflight_requests_max",
    "request_id_max",
]


# --- parts of messages ---------------------------------------------------------------
class MessageAttribute(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True, gc=False):
    """A typed attribute: ``data_type`` is String, Number or Binary, optionally with a
    ``.custom`` suffix; String and Number use ``string_value``, Binary ``binary_value``."""

    data_type: str
    string_value: str | None = None
    binary_value: bytes | None = None


class SendEntry(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True, gc=False):
    """One message of a ``send_batch``."""

    body: bytes
    attributes: dict[str, MessageAttribute] = {}
    delay_s: int | None = None
    group_id: str | None = None
    dedup_id: str | None = None
    system: dict[str, str] = {}  # system attributes, e.g. AWSTraceHeader


class VisibilityEntry(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One entry of a ``change_visibility_batch``."""

    receipt_handle: str
    timeout_s: int


class _Outcome(msgspec.Struct, tag_field="kind", kw_only=True, omit_defaults=True):
    """A per-entry result of a batch: ``kind`` is ``ok`` or ``error``."""


class SendResult(_Outcome, tag="ok", gc=False):
    message_id: str
    sequence_number: str | None = None  # FIFO queues only
    duplicate: bool = False  # a FIFO resend inside the deduplication window


class ErrorInfo(_Outcome, tag="error"):
    """Why one request, or one entry of a batch, failed: a :mod:`conveyor.errors` code."""

    code: str
    message: str = ""
    retriable: bool = False

    def to_exception(self) -> errors.ConveyorError:
        return errors.from_code(self.code, self.message)


class Message(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True, gc=False):
    """A received (or peeked: ``receipt_handle`` is empty) message."""

    message_id: str
    body: bytes
    receipt_handle: str = ""
    attributes: dict[str, MessageAttribute] = {}
    system: dict[str, str] = {}  # e.g. DeadLetterQueueSourceQueue
    sent_ms: int
    receive_count: int = 0
    first_receive_ms: int = 0
    group_id: str | None = None
    dedup_id: str | None = None
    sequence_number: str | None = None


# --- frames --------------------------------------------------------------------------
class _Frame(msgspec.Struct, tag_field="op", kw_only=True, omit_defaults=True):
    """Every frame body is a map with an ``op`` key naming its type."""


class Hello(_Frame, tag="hello"):
    """The client's first frame: the protocol versions it speaks (any order), who it is,
    an optional auth token, and the largest frame body it accepts."""

    versions: Annotated[list[Version], Meta(min_length=1, max_length=hello_versions_max)]
    client: Annotated[str, Meta(max_length=client_name_length_max)] = ""
    token: Annotated[str, Meta(max_length=auth_token_length_max)] | None = None
    max_frame_bytes: FrameBytes = frame_bytes_default


class Welcome(_Frame, tag="welcome"):
    """The server's answer to a good Hello: the version both speak (the highest), who it
    is, the largest frame body it accepts and how many requests may be in flight."""

    version: Version
    server: Annotated[str, Meta(max_length=client_name_length_max)] = ""
    node_id: str = ""
    max_frame_bytes: FrameBytes = frame_bytes_default
    max_inflight: InflightMax = inflight_requests_default


class Request(_Frame):
    """Base of every request: ``id`` is chosen by the client, unique among its requests
    in flight on this connection."""

    OP: ClassVar[str]
    id: RequestId


class Response(_Frame):
    """Base of every successful response: ``id`` echoes the request's."""

    OP: ClassVar[str]
    id: RequestId


class ErrorResponse(_Frame, tag="error", kw_only=True):
    """A failed request (``id`` set), or the end of the connection (``id`` is None: the
    handshake was refused or the peer broke the protocol, and the sender closes)."""

    id: RequestId | None = None
    code: str
    message: str = ""
    retriable: bool = False

    def to_exception(self) -> errors.ConveyorError | ProtocolError:
        """The error this frame reports: a ConveyorError for a request's failure (an
        unknown code becomes InternalError), a ProtocolError for a protocol code."""
        if self.code in PROTOCOL_ERROR_CODES:
            return ProtocolError(self.code, self.message)
        return errors.from_code(self.code, self.message)


# Queues --------------------------------------------------------------------------------
class CreateQueueRequest(Request, tag="create_queue"):
    name: str
    config: dict[str, Any] = {}  # only the attributes given; the rest take defaults
    tags: dict[str, str] = {}


class CreateQueueResponse(Response, tag="create_queue"):
    name: str
    created: bool  # False: it existed already with the same attributes


class DeleteQueueRequest(Request, tag="delete_queue"):
    name: str


class DeleteQueueResponse(Response, tag="delete_queue"):
    pass


class PurgeQueueRequest(Request, tag="purge_queue"):
    name: str


class PurgeQueueResponse(Response, tag="purge_queue"):
    pass


class ListQueuesRequest(Request, tag="list_queues"):
    prefix: str = ""
    limit: ListLimit = list_queues_limit_default
    after: str | None = None  # the ``next`` of the previous page


class ListQueuesResponse(Response, tag="list_queues"):
    names: Annotated[list[str], Meta(max_length=list_queues_limit_max)]
    next: str | None = None  # more names follow: pass it as ``after``


class GetQueueRequest(Request, tag="get_queue"):
    name: str


class GetQueueResponse(Response, tag="get_queue"):
    name: str
    config: dict[str, Any]  # every attribute
    stats: dict[str, Any] = {}  # messages, bytes, visible, inflight, delayed, oldest_age_s
    tags: dict[str, str] = {}
    uid: str = ""  # the queue's unique id (a queue created again under its name gets another)
    created_ms: int = 0
    modified_ms: int = 0


class SetQueueRequest(Request, tag="set_queue"):
    name: str
    config: dict[str, Any]  # only the attributes to change


class SetQueueResponse(Response, tag="set_queue"):
    pass


class TagQueueRequest(Request, tag="tag_queue"):
    name: str
    tags: dict[str, str] = {}  # added or replaced
    remove: list[str] = []  # keys removed


class TagQueueResponse(Response, tag="tag_queue"):
    pass


# Messages ------------------------------------------------------------------------------
class SendRequest(Request, tag="send"):
    queue: str
    body: bytes
    attributes: dict[str, MessageAttribute] = {}
    delay_s: int | None = None
    group_id: str | None = None
    dedup_id: str | None = None
    system: dict[str, str] = {}


class SendResponse(Response, tag="send"):
    message_id: str
    sequence_number: str | None = None
    duplicate: bool = False


class SendBatchRequest(Request, tag="send_batch"):
    queue: str
    entries: Annotated[list[SendEntry], Meta(max_length=limits.native_batch_entries_max)]


class SendBatchResponse(Response, tag="send_batch"):
    """One result per entry, in the order of the entries."""

    results: Annotated[
        list[SendResult | ErrorInfo], Meta(max_length=limits.native_batch_entries_max)
    ]


class ReceiveRequest(Request, tag="receive"):
    queue: str
    max_messages: ReceiveCount = 1
    visibility_timeout_s: int | None = None  # None: the queue's default
    wait_s: float | None = None  # None: the queue's receive wait time
    attempt_id: str | None = None  # FIFO receive request attempt id


class ReceiveResponse(Response, tag="receive"):
    messages: Annotated[list[Message], Meta(max_length=limits.native_receive_messages_max)]


class PeekRequest(Request, tag="peek"):
    queue: str
    max_messages: ReceiveCount = peek_messages_default


class PeekResponse(Response, tag="peek"):
    messages: Annotated[list[Message], Meta(max_length=limits.native_receive_messages_max)]


class DeleteRequest(Request, tag="delete"):
    queue: str
    receipt_handle: str


class DeleteResponse(Response, tag="delete"):
    pass


class DeleteBatchRequest(Request, tag="delete_batch"):
    queue: str
    receipt_handles: Annotated[list[str], Meta(max_length=limits.native_batch_entries_max)]


class DeleteBatchResponse(Response, tag="delete_batch"):
    """One entry per receipt handle, in order: None for success, or the error."""

    results: Annotated[list[ErrorInfo | None], Meta(max_length=limits.native_batch_entries_max)]


class ChangeVisibilityRequest(Request, tag="change_visibility"):
    queue: str
    receipt_handle: str
    timeout_s: int  # from now; 0 makes the message visible again


class ChangeVisibilityResponse(Response, tag="change_visibility"):
    pass


class ChangeVisibilityBatchRequest(Request, tag="change_visibility_batch"):
    queue: str
    entries: Annotated[list[VisibilityEntry], Meta(max_length=limits.native_batch_entries_max)]


class ChangeVisibilityBatchResponse(Response, tag="change_visibility_batch"):
    """One entry per request entry, in order: None for success, or the error."""

    results: Annotated[list[ErrorInfo | None], Meta(max_length=limits.native_batch_entries_max)]


class RedriveRequest(Request, tag="redrive"):
    source: str  # a dead-letter queue
    destination: str | None = None  # None: back to the queue each message came from
    max_messages: Annotated[int, Meta(ge=1)] | None = None  # None: all


class RedriveResponse(Response, tag="redrive"):
    moved: int


# Between nodes --------------------------------------------------------------------------
class ReplicateRequest(Request, tag="replicate"):
    """A replication message from node ``sender`` (``conveyor.replication.messages``,
    msgpack-encoded in ``data``). Only nodes of a cluster send it; the answer is an empty
    acknowledgement, and the replication protocol's own answer travels as another
    ReplicateRequest the other way."""

    sender: Annotated[str, Meta(max_length=128)]
    data: bytes


class ReplicateResponse(Response, tag="replicate"):
    pass


class MoveInRequest(Request, tag="move_in"):
    """Messages another node moves into partition ``partition`` of the queue ``queue_uid``
    (a dead-letter move or a redrive), each an encoded append record
    (``conveyor.partition.records``). Answered once they are durable there."""

    queue_uid: Annotated[str, Meta(min_length=16, max_length=16)]
    partition: Annotated[int, Meta(ge=0)]
    records: list[bytes]


class MoveInResponse(Response, tag="move_in"):
    queue: str  # the destination's name


class ClusterStatusRequest(Request, tag="cluster_status"):
    """Nodes, partitions, leaders, ISR and lag, as the answering node sees them."""


class ClusterStatusResponse(Response, tag="cluster_status"):
    status: dict[str, Any]


class DrainNodeRequest(Request, tag="drain_node"):
    """Ask the cluster to move every replica off ``node`` (``cancel``: stop doing so)."""

    node: Annotated[str, Meta(min_length=1, max_length=128)]
    cancel: bool = False


class DrainNodeResponse(Response, tag="drain_node"):
    replicas: int  # how many replicas the node still holds


class PingRequest(Request, tag="ping"):
    pass


class PingResponse(Response, tag="ping"):
    """The pong."""


# --- unions --------------------------------------------------------------------------
AnyRequest: TypeAlias = (
    CreateQueueRequest
    | DeleteQueueRequest
    | PurgeQueueRequest
    | ListQueuesRequest
    | GetQueueRequest
    | SetQueueRequest
    | TagQueueRequest
    | SendRequest
    | SendBatchRequest
    | ReceiveRequest
    | PeekRequest
    | DeleteRequest
    | DeleteBatchRequest
    | ChangeVisibilityRequest
    | ChangeVisibilityBatchRequest
    | RedriveRequest
    | ReplicateRequest
    | MoveInRequest
    | ClusterStatusRequest
    | DrainNodeRequest
    | PingRequest
)
AnyResponse: TypeAlias = (
    CreateQueueResponse
    | DeleteQueueResponse
    | PurgeQueueResponse
    | ListQueuesResponse
    | GetQueueResponse
    | SetQueueResponse
    | TagQueueResponse
    | SendResponse
    | SendBatchResponse
    | ReceiveResponse
    | PeekResponse
    | DeleteResponse
    | DeleteBatchResponse
    | ChangeVisibilityResponse
    | ChangeVisibilityBatchResponse
    | RedriveResponse
    | ReplicateResponse
    | MoveInResponse
    | ClusterStatusResponse
    | DrainNodeResponse
    | PingResponse
)
# What a client sends (a server decodes); an ErrorResponse only without an id, to say
# why it closes.
ClientMessage: TypeAlias = Hello | AnyRequest | ErrorResponse
ServerMessage: TypeAlias = Welcome | AnyResponse | ErrorResponse  # what a server sends

REQUEST_TYPES: tuple[type[Request], ...] = get_args(AnyRequest)
RESPONSE_TYPES: tuple[type[Response], ...] = get_args(AnyResponse)


def _tag(cls: type[msgspec.Struct]) -> str:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str), cls
    return tag


for _request in REQUEST_TYPES:
    _request.OP = _tag(_request)
for _response in RESPONSE_TYPES:
    _response.OP = _tag(_response)
OPS: tuple[str, ...] = tuple(cls.OP for cls in REQUEST_TYPES)
RESPONSE_FOR: dict[str, type[Response]] = {cls.OP: cls for cls in RESPONSE_TYPES}
assert len(set(OPS)) == len(OPS) == len(RESPONSE_FOR), "one response type per request op"
assert set(OPS) == set(RESPONSE_FOR)
assert not {"hello", "welcome", "error"} & set(OPS)


# --- errors <-> frames ---------------------------------------------------------------
def error_info(exc: errors.ConveyorError) -> ErrorInfo:
    """The per-entry form of an error (in batch results)."""
    return ErrorInfo(code=exc.code, message=exc.message, retriable=exc.retriable)


def error_response(
    request_id: int | None, exc: errors.ConveyorError | ProtocolError
) -> ErrorResponse:
    """The frame reporting ``exc``: for the request ``request_id``, or, with None, for
    the whole connection (a refused handshake, a protocol error) just before closing."""
    if isinstance(exc, ProtocolError):
        return ErrorResponse(id=request_id, code=exc.code, message=exc.message)
    return ErrorResponse(id=request_id, code=exc.code, message=exc.message, retriable=exc.retriable)
