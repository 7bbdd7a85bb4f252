"""The Amazon SQS API served from the broker: the glue between the codec and the broker.

For each HTTP request :meth:`SqsApi.handle`

1. verifies the SigV4 signature when access keys are configured (``Settings.
   sqs_access_keys``; with none, any credentials pass and are only read);
2. decodes and checks the request (:func:`conveyor.protocol.sqs.parse_request`, both
   the JSON 1.0 and the query protocol);
3. names the caller: the account is the access key when that is 12 digits, else
   ``Settings.account_id``; the region is the signature's, else ``Settings.region``;
   queue URLs are built from the request's ``Host``;
4. does the action against the :class:`~conveyor.broker.aio.AsyncBroker`, mapping
   (account, queue name) to broker queue names as :mod:`.sqs_names` documents;
5. renders the result, or the error with its SQS code, status and
   ``x-amzn-query-error`` header (:func:`conveyor.protocol.sqs.render_error`).

Per-request work is the codec's decode and encode plus one broker call; nothing is
looked up that the broker would check anyway (a send to a missing queue is the broker's
QueueDoesNotExist, a too-large message its MessageTooLong).

SendMessage, ReceiveMessage, DeleteMessage, SendMessageBatch and DeleteMessageBatch in
the JSON protocol take a shorter way when they can (:mod:`conveyor.protocol.sqs.hot`):
their bodies are decoded into typed structs and checked in one step, the action runs
from the struct and its answer is encoded in one call, with no
:class:`~conveyor.protocol.sqs.SqsRequest`, params dict or output shape in between. A
request that way cannot answer as the generic one would (bad input, message
attributes, a batch entry that fails its own checks) takes the generic way. Both run
the same steps in the same order (signature, credential, queue URL, the action's broker
call), so answers, errors and the requests counted are the same either way
(``tests/sqs_server/test_sqs_hot_api.py`` answers requests both ways and compares).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from conveyor import errors
from conveyor.broker.aio import AsyncBroker
from conveyor.protocol import sqs
from conveyor.protocol.sqs import hot
from conveyor.protocol.sqs.errors import SqsError, invalid_attribute_value, invalid_value
from conveyor.protocol.sqs.md5 import md5_hex
from conveyor.protocol.sqs.queue_attributes import check_attribute_names
from conveyor.protocol.sqs.response import JSON_CONTENT_TYPE
from conveyor.protocol.sqs.results import (
    BatchResultErrorEntry,
    BatchResultIdEntry,
    DeleteMessageBatchResult,
    ReceivedMessage,
    ReceiveMessageResult,
    SendMessageBatchResult,
    SendMessageBatchResultEntry,
    TypedResult,
    batch_error_result,
    received_message,
    send_message_result,
)
from conveyor.protocol.sqs.urls import parse_arn
from conveyor.queue import RedrivePolicy
from conveyor.server.http import Request, Response
from conveyor.server.settings import Settings
from conveyor.server.sqs_moves import MoveTasks
from conveyor.server.sqs_names import (
    CONFIG_ATTRIBUTES,
    DEDUP_SCOPE_TO_BROKER,
    EXTRA_ATTRIBUTES,
    EXTRAS_TAG,
    RESERVED_TAG_PREFIX,
    Accounts,
    config_value_to_sqs,
    read_extras,
    user_tags,
    write_extras,
)
from conveyor.types import Message, MessageAttribute, QueueInfo, SendEntry, SendResult

log = logging.getLogger("conveyor.sqs")

list_queues_default_max = 1000  # ListQueues without MaxResults: AWS returns up to 1000
move_tasks_listed_default = 1
broker_names_cached_max = 4096  # queue URL -> broker name, a pure function

Result = dict[str, Any] | TypedResult | None

_id_mask = (1 << 48) - 1
_id_bit = 1 << 48  # hex(n & _id_mask | _id_bit)[3:] == f"{n & _id_mask:012x}", sooner
_FIFO_CONFIG = frozenset({"FifoQueue", "ContentBasedDeduplication", "DeduplicationScope"})
_DLQ_SOURCE = "DeadLetterQueueSourceQueue"  # the broker's system key on moved messages
_token_encoder = msgspec.json.Encoder()
_token_decoder = msgspec.json.Decoder(dict[str, str])
_result_encoder = msgspec.json.Encoder()  # a typed result, as render_result encodes it


class _Ctx:
    """Who is asking, from where: what actions need besides their parameters."""

    __slots__ = ("account", "region", "req")

    def __init__(self, req: sqs.SqsRequest, account: str, region: str) -> None:
        self.req = req
        self.account = account
        self.region = region

    @property
    def base(self) -> str:
        return sqs.base_url(self.req.host)

    def url(self, account: str, name: str) -> str:
        return sqs.queue_url(self.base, account, name)

    def arn(self, account: str, name: str) -> str:
        return sqs.queue_arn(self.region, account, name)


class SqsApi:
    """Serves every SQS action from an :class:`AsyncBroker`."""

    def __init__(
        self,
        broker: AsyncBroker,
        settings: Settings,
        on_request: Callable[[str, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_request = on_request  # (action, "OK" or error code), e.g. for metrics
        self.broker = broker
        self.accounts = Accounts(settings.account_id)
        self.moves = MoveTasks(self.broker.redrive)
        self._secrets: dict[str, str] = dict(settings.sqs_access_keys)
        self._queue_locks: dict[str, asyncio.Lock] = {}
        # Request ids look like AWS's (UUIDs): a random prefix per process, then a counter
        # (str(uuid.uuid4()) per request costs more than the rest of a small request).
        self._request_id_prefix = str(uuid.uuid4())[:24]
        self._request_ids = itertools.count(1)
        self._broker_names: dict[str, str] = {}  # queue URL -> broker name
        self._hot_actions: dict[
            str, Callable[[Any, str, str, str], Awaitable[TypedResult | None]]
        ] = {
            "SendMessage": self._hot_send_message,
            "ReceiveMessage": self._hot_receive_message,
            "DeleteMessage": self._hot_delete_message,
            "SendMessageBatch": self._hot_send_message_batch,
            "DeleteMessageBatch": self._hot_delete_message_batch,
        }
        self._actions: dict[str, Callable[[_Ctx], Awaitable[Result]]] = {
            "CreateQueue": self._create_queue,
            "GetQueueUrl": self._get_queue_url,
            "ListQueues": self._list_queues,
            "GetQueueAttributes": self._get_queue_attributes,
            "SetQueueAttributes": self._set_queue_attributes,
            "DeleteQueue": self._delete_queue,
            "PurgeQueue": self._purge_queue,
            "SendMessage": self._send_message,
            "SendMessageBatch": self._send_message_batch,
            "ReceiveMessage": self._receive_message,
            "DeleteMessage": self._delete_message,
            "DeleteMessageBatch": self._delete_message_batch,
            "ChangeMessageVisibility": self._change_message_visibility,
            "ChangeMessageVisibilityBatch": self._change_message_visibility_batch,
            "TagQueue": self._tag_queue,
            "UntagQueue": self._untag_queue,
            "ListQueueTags": self._list_queue_tags,
            "ListDeadLetterSourceQueues": self._list_dead_letter_source_queues,
            "StartMessageMoveTask": self._start_message_move_task,
            "ListMessageMoveTasks": self._list_message_move_tasks,
            "CancelMessageMoveTask": self._cancel_message_move_task,
            "AddPermission": self._add_permission,
            "RemovePermission": self._remove_permission,
        }
        assert set(self._actions) == set(sqs.ACTIONS)

    async def close(self) -> None:
        await self.moves.close()

    # ------------------------------------------------------------------ HTTP
    async def handle(self, request: Request) -> Response:
        request_id = self._request_id_prefix + hex(next(self._request_ids) & _id_mask | _id_bit)[3:]
        headers = request.headers
        action = "unknown"  # until the request is parsed
        try:
            credential = None
            if self._secrets:
                credential = sqs.verify(
                    request.method,
                    request.path,
                    request.query,
                    headers,
                    request.body,
                    secret_for=self._secrets.get,
                    now_s=time.time(),
                )
            p = hot.decode(headers.get("x-amz-target"), request.body)
            if p is not None:
                # parse_request's steps for this request, in its order
                if credential is None:
                    credential = sqs.extract(headers, request.query)
                url = p.QueueUrl
                name = self._broker_names.get(url)
                if name is None:
                    ref = sqs.parse_queue_url(url)  # InvalidAddress
                action = p.action
                if credential is None:
                    region = self.settings.region
                    account = sender = self.settings.account_id
                else:
                    region = credential.region
                    account = sqs.account_for(credential.access_key, self.settings.account_id)
                    sender = credential.access_key or account
                if name is None:
                    name = self._broker_name(url, ref)
                typed = await self._hot_actions[action](p, name, sender, region)
                resp = Response(  # what render_result answers, without its walk
                    200,
                    b"{}" if typed is None else _result_encoder.encode(typed),
                    JSON_CONTENT_TYPE,
                    [("x-amzn-RequestId", request_id)],
                )
                code = "OK"
            else:
                req = sqs.parse_request(
                    request.method,
                    request.path,
                    request.query,
                    headers,
                    request.body,
                    credential=credential,
                    headers_lowered=True,  # http.Request's header names are lower case
                )
                if req.access_key is None:
                    region = self.settings.region
                    account = self.settings.account_id
                else:
                    region = req.region
                    account = sqs.account_for(req.access_key, self.settings.account_id)
                ctx = _Ctx(req, account, region)
                action = req.action
                result = await self._actions[req.action](ctx)
                out = sqs.render_result(req.action, req.protocol, result, request_id)
                resp = Response(out.status, out.body, out.content_type, out.headers)
                code = "OK"
        except Exception as exc:
            resp, code = self._error(exc, headers, request_id)
        if self._on_request is not None:
            self._on_request(action, code)
        return resp

    @staticmethod
    def _error(exc: Exception, headers: Mapping[str, str], request_id: str) -> tuple[Response, str]:
        """The error response for ``exc``, and its code."""
        if isinstance(exc, SqsError):
            code = exc.code
        elif isinstance(exc, errors.ConveyorError):
            code = exc.sqs_code
        else:
            code = "InternalError"
            log.exception("SQS request failed", extra={"request_id": request_id})
        out = sqs.render_error(sqs.protocol_of(headers), exc, request_id)
        return Response(out.status, out.body, out.content_type, out.headers), code

    # ------------------------------------------------------------------ helpers
    def _queue(self, ctx: _Ctx) -> str:
        """The broker name of the queue the request's QueueUrl names."""
        req = ctx.req
        assert req.queue is not None and req.queue_url is not None
        name = self._broker_names.get(req.queue_url)
        if name is None:
            name = self._broker_name(req.queue_url, req.queue)
        return name

    def _broker_name(self, url: str, ref: sqs.QueueRef) -> str:
        """The broker name of queue URL ``url`` (parsed: ``ref``), kept once known."""
        name = self.accounts.lookup(ref.account, ref.name)  # may raise: not kept
        if len(self._broker_names) >= broker_names_cached_max:
            self._broker_names.clear()
        self._broker_names[url] = name
        return name

    def _arn_queue(self, arn: str, parameter: str) -> tuple[str, str, str]:
        """(broker name, account, name) of a queue ARN; ResourceNotFound if impossible."""
        ref = parse_arn(arn, parameter)
        name = self.accounts.broker_name(ref.account, ref.name)
        if name is None:
            raise SqsError(
                "ResourceNotFoundException", "The resource that you specified does not exist."
            )
        return name, ref.account, ref.name

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._queue_locks.get(name)
        if lock is None:
            lock = self._queue_locks[name] = asyncio.Lock()
        return lock

    def _split_attributes(
        self, typed: Mapping[str, object], ctx: _Ctx, fifo: bool
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Typed SQS attributes -> (broker config changes, SQS-only wire strings)."""
        config: dict[str, Any] = {}
        extras: dict[str, str] = {}
        for name, value in typed.items():
            if name == "RedrivePolicy":
                config["redrive"] = self._redrive_config(value, ctx)
            elif name == "DeduplicationScope":
                config["dedup_scope"] = DEDUP_SCOPE_TO_BROKER[str(value)]
            elif name == "FifoQueue":
                if fifo:
                    config["fifo"] = True
            elif name in CONFIG_ATTRIBUTES:
                config[CONFIG_ATTRIBUTES[name]] = value
            else:
                assert name in EXTRA_ATTRIBUTES, name
                extras[name] = "" if value is None else sqs.attribute_string(value)
        return config, extras

    def _redrive_config(self, value: object, ctx: _Ctx) -> dict[str, Any] | None:
        if value is None:
            return None
        assert isinstance(value, dict)
        ref = parse_arn(value["deadLetterTargetArn"], "deadLetterTargetArn")
        dlq = self.accounts.broker_name(ref.account, ref.name)
        if dlq is None:
            raise invalid_attribute_value("RedrivePolicy", "Dead letter target does not exist.")
        return {"dead_letter_queue": dlq, "max_receive_count": value["maxReceiveCount"]}

    def _redrive_json(self, redrive: RedrivePolicy, ctx: _Ctx) -> str:
        account, name = self.accounts.split(redrive.dead_letter_queue)
        return _token_encoder.encode(
            {
                "deadLetterTargetArn": ctx.arn(account, name),
                "maxReceiveCount": redrive.max_receive_count,
            }
        ).decode("utf-8")

    def _attributes_of(self, info: QueueInfo, ctx: _Ctx, wanted: list[str]) -> dict[str, str]:
        cfg = info.config
        account, name = self.accounts.split(info.name)
        extras = read_extras(info.tags)
        out: dict[str, str] = {}
        for attr in wanted:
            field = CONFIG_ATTRIBUTES.get(attr)
            if field is not None:
                if not cfg.fifo and attr in _FIFO_CONFIG:
                    continue
                out[attr] = config_value_to_sqs(field, getattr(cfg, field))
            elif attr == "RedrivePolicy":
                if cfg.redrive is not None:
                    out[attr] = self._redrive_json(cfg.redrive, ctx)
            elif attr == "QueueArn":
                out[attr] = ctx.arn(account, name)
            elif attr == "CreatedTimestamp":
                out[attr] = str(info.created_ms // 1000)
            elif attr == "LastModifiedTimestamp":
                out[attr] = str(info.modified_ms // 1000)
            elif attr.startswith("ApproximateNumberOfMessages"):
                stats = info.stats
                if stats is None:
                    continue
                if attr == "ApproximateNumberOfMessages":
                    out[attr] = str(stats.visible)
                elif attr == "ApproximateNumberOfMessagesNotVisible":
                    out[attr] = str(stats.inflight)
                else:
                    out[attr] = str(stats.delayed)
            elif attr == "SqsManagedSseEnabled":
                out[attr] = extras.get(attr, "false")
            elif attr == "FifoThroughputLimit":
                if cfg.fifo:
                    out[attr] = extras.get(attr, "perQueue")
            elif attr == "KmsDataKeyReusePeriodSeconds":
                if "KmsMasterKeyId" in extras or attr in extras:
                    out[attr] = extras.get(attr, "300")
            elif extras.get(attr):
                out[attr] = extras[attr]
        return out

    # ------------------------------------------------------------------ queues
    async def _create_queue(self, ctx: _Ctx) -> Result:
        p = ctx.req.params
        name: str = p["QueueName"]
        fifo = name.endswith(".fifo")
        broker_name = self.accounts.name_for_create(ctx.account, name)
        typed = sqs.parse_queue_attributes(p.get("Attributes") or {}, "CreateQueue")
        config, extras = self._split_attributes(typed, ctx, fifo)
        extras = {k: v for k, v in extras.items() if v != ""}
        tags: dict[str, str] = dict(p.get("tags") or {})
        url = ctx.url(ctx.account, name)
        async with self._lock(broker_name):
            try:
                existing = await self.broker.get_queue(broker_name)
            except errors.QueueDoesNotExist:
                existing = None
            if existing is None:
                if extras:
                    tags[EXTRAS_TAG] = write_extras(extras)
                try:
                    await self.broker.create_queue(broker_name, config, tags)
                    return {"QueueUrl": url}
                except errors.QueueAlreadyExists:
                    existing = await self.broker.get_queue(broker_name)
            self._check_same(existing, typed, ctx, fifo)
        return {"QueueUrl": url}

    def _check_same(
        self, existing: QueueInfo, typed: Mapping[str, object], ctx: _Ctx, fifo: bool
    ) -> None:
        """CreateQueue of an existing queue: every attribute given must match."""
        current = self._attributes_of(existing, ctx, sorted(typed))
        for attr, value in typed.items():
            if attr == "FifoQueue" and not fifo:
                continue
            if attr == "RedrivePolicy":
                cfg_redrive = self._redrive_config(value, ctx)
                have = existing.config.redrive
                same = (cfg_redrive is None and have is None) or (
                    cfg_redrive is not None
                    and have is not None
                    and cfg_redrive["dead_letter_queue"] == have.dead_letter_queue
                    and cfg_redrive["max_receive_count"] == have.max_receive_count
                )
            else:
                wire = "" if value is None else sqs.attribute_string(value)
                same = current.get(attr, "") == wire
            if not same:
                raise errors.QueueAlreadyExists(
                    "A queue already exists with the same name and a different value for "
                    f"attribute {attr}"
                )

    async def _get_queue_url(self, ctx: _Ctx) -> Result:
        p = ctx.req.params
        account = p.get("QueueOwnerAWSAccountId") or ctx.account
        name: str = p["QueueName"]
        broker_name = self.accounts.lookup(account, name)
        if broker_name not in await self.broker.list_queues(broker_name):
            raise errors.QueueDoesNotExist("The specified queue does not exist.")
        return {"QueueUrl": ctx.url(account, name)}

    async def _list_queues(self, ctx: _Ctx) -> Result:
        p = ctx.req.params
        names = await self.broker.list_queues(
            self.accounts.list_prefix(ctx.account, p.get("QueueNamePrefix", ""))
        )
        names = [n for n in names if self.accounts.in_account(ctx.account, n)]
        urls, token = self._page(names, p, lambda n: ctx.url(*self.accounts.split(n)))
        out: dict[str, Any] = {"QueueUrls": urls}
        if token is not None:
            out["NextToken"] = token
        return out

    def _page(
        self, names: list[str], p: Mapping[str, Any], url: Callable[[str], str]
    ) -> tuple[list[str], str | None]:
        """One page of sorted broker names; the token names the last one returned."""
        max_results: int | None = p.get("MaxResults")
        token = p.get("NextToken")
        if token:
            after = _decode_token(token)
            names = [n for n in names if n > after]
        limit = max_results or list_queues_default_max
        page = names[:limit]
        more = max_results is not None and len(names) > limit
        return [url(n) for n in page], (_encode_token(page[-1]) if more and page else None)

    async def _get_queue_attributes(self, ctx: _Ctx) -> Result:
        names = check_attribute_names(ctx.req.params.get("AttributeNames") or ())
        info = await self.broker.get_queue(self._queue(ctx))
        return {"Attributes": self._attributes_of(info, ctx, names)}

    async def _set_queue_attributes(self, ctx: _Ctx) -> Result:
        name = self._queue(ctx)
        ref = ctx.req.queue
        assert ref is not None
        fifo = ref.name.endswith(".fifo")
        typed = sqs.parse_queue_attributes(ctx.req.params["Attributes"], "SetQueueAttributes")
        sqs.check_queue_kind(typed, fifo)
        config, extras = self._split_attributes(typed, ctx, fifo)
        async with self._lock(name):
            if config:
                await self.broker.set_queue(name, config)
            if extras:
                info = await self.broker.get_queue(name)
                merged = read_extras(info.tags)
                for key, value in extras.items():
                    if value == "":
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                if merged:
                    await self.broker.tag_queue(name, {EXTRAS_TAG: write_extras(merged)})
                else:
                    await self.broker.tag_queue(name, {}, [EXTRAS_TAG])
            elif not config:
                await self.broker.get_queue(name)  # QueueDoesNotExist if it does not
        return None

    async def _delete_queue(self, ctx: _Ctx) -> Result:
        name = self._queue(ctx)
        await self.broker.delete_queue(name)
        self.moves.forget_queue(name)
        self._queue_locks.pop(name, None)
        return None

    async def _purge_queue(self, ctx: _Ctx) -> Result:
        await self.broker.purge_queue(self._queue(ctx))
        return None

    # ------------------------------------------------------------------ tags, permissions
    async def _tag_queue(self, ctx: _Ctx) -> Result:
        name = self._queue(ctx)
        tags: dict[str, str] = ctx.req.params["Tags"]
        async with self._lock(name):
            await self.broker.tag_queue(name, dict(tags))
        return None

    async def _untag_queue(self, ctx: _Ctx) -> Result:
        name = self._queue(ctx)
        keys = [k for k in ctx.req.params["TagKeys"] if not k.startswith(RESERVED_TAG_PREFIX)]
        async with self._lock(name):
            await self.broker.tag_queue(name, {}, keys)
        return None

    async def _list_queue_tags(self, ctx: _Ctx) -> Result:
        info = await self.broker.get_queue(self._queue(ctx))
        return {"Tags": user_tags(info.tags)}

    async def _update_policy(
        self, ctx: _Ctx, change: Callable[[dict[str, Any], str], None]
    ) -> None:
        name = self._queue(ctx)
        account, sqs_name = self.accounts.split(name)
        arn = ctx.arn(account, sqs_name)
        async with self._lock(name):
            info = await self.broker.get_queue(name)
            extras = read_extras(info.tags)
            try:
                policy = msgspec.json.decode(extras["Policy"]) if extras.get("Policy") else {}
            except msgspec.DecodeError:
                policy = {}
            if not isinstance(policy, dict):
                policy = {}
            policy.setdefault("Version", "2012-10-17")
            policy.setdefault("Id", f"{arn}/SQSDefaultPolicy")
            if not isinstance(policy.get("Statement"), list):
                policy["Statement"] = []
            change(policy, arn)
            if policy["Statement"]:
                extras["Policy"] = _token_encoder.encode(policy).decode("utf-8")
            else:
                extras.pop("Policy", None)
            await self.broker.tag_queue(name, {EXTRAS_TAG: write_extras(extras)})

    async def _add_permission(self, ctx: _Ctx) -> Result:
        p = ctx.req.params
        label: str = p["Label"]

        def add(policy: dict[str, Any], arn: str) -> None:
            if any(isinstance(s, dict) and s.get("Sid") == label for s in policy["Statement"]):
                raise invalid_value("Label", label, "Already exists.")
            principals = [f"arn:aws:iam::{a}:root" for a in p["AWSAccountIds"]]
            policy["Statement"].append(
                {
                    "Sid": label,
                    "Effect": "Allow",
                    "Principal": {"AWS": principals[0] if len(principals) == 1 else principals},
                    "Action": [f"SQS:{a}" for a in p["Actions"]],
                    "Resource": arn,
                }
            )

        await self._update_policy(ctx, add)
        return None

    async def _remove_permission(self, ctx: _Ctx) -> Result:
        label: str = ctx.req.params["Label"]

        def remove(policy: dict[str, Any], arn: str) -> None:
            kept = [
                s
                for s in policy["Statement"]
                if not (isinstance(s, dict) and s.get("Sid") == label)
            ]
            if len(kept) == len(policy["Statement"]):
                raise invalid_value("Label", label, "can't find label.")
            policy["Statement"] = kept

        await self._update_policy(ctx, remove)
        return None

    # ------------------------------------------------------------------ messages
    @staticmethod
    def _entry(e: Mapping[str, Any], sender: str, fifo: bool) -> SendEntry:
        system = {"SenderId": sender}
        trace = (e.get("MessageSystemAttributes") or {}).get("AWSTraceHeader")
        if trace is not None:
            system["AWSTraceHeader"] = trace["StringValue"]
        attrs = e.get("MessageAttributes")
        delay = e.get("DelaySeconds")
        return SendEntry(
            body=e["MessageBody"],
            attributes=(
                {
                    k: MessageAttribute(v["DataType"], v.get("StringValue"), v.get("BinaryValue"))
                    for k, v in attrs.items()
                }
                if attrs
                else None
            ),
            # a FIFO queue takes no per-message delay; SQS accepts an explicit 0 there
            delay_s=None if delay == 0 and fifo else delay,
            group_id=e.get("MessageGroupId"),
            dedup_id=e.get("MessageDeduplicationId"),
            system=system,
        )

    @staticmethod
    def _sender(ctx: _Ctx) -> str:
        return ctx.req.access_key or ctx.account

    async def _send_message(self, ctx: _Ctx) -> Result:
        p = ctx.req.params
        name = self._queue(ctx)
        entry = self._entry(p, self._sender(ctx), name.endswith(".fifo"))
        result = (await self.broker.send_batch(name, [entry]))[0]
        if isinstance(result, errors.ConveyorError):
            raise result
        return send_message_result(
            result.message_id,
            p["MessageBody"],
            p.get("MessageAttributes"),
            p.get("MessageSystemAttributes"),
            result.sequence_number,
        )

    @staticmethod
    def _hot_entry(
        e: hot.SendMessageIn | hot.SendBatchEntryIn, sender: str, fifo: bool
    ) -> SendEntry:
        """:meth:`_entry` of a typed message (no message attributes)."""
        delay = e.DelaySeconds
        return SendEntry(
            body=e.MessageBody,
            # a FIFO queue takes no per-message delay; SQS accepts an explicit 0 there
            delay_s=None if delay == 0 and fifo else delay,
            group_id=e.MessageGroupId,
            dedup_id=e.MessageDeduplicationId,
            system={"SenderId": sender},
        )

    async def _hot_send_message(
        self, p: hot.SendMessageIn, name: str, sender: str, region: str
    ) -> TypedResult:
        """:meth:`_send_message` of a typed request."""
        entry = self._hot_entry(p, sender, name.endswith(".fifo"))
        result = (await self.broker.send_batch(name, [entry]))[0]
        if isinstance(result, errors.ConveyorError):
            raise result
        return send_message_result(
            result.message_id, p.MessageBody, None, None, result.sequence_number
        )

    async def _hot_send_message_batch(
        self, p: hot.SendMessageBatchIn, name: str, sender: str, region: str
    ) -> TypedResult:
        """:meth:`_send_message_batch` of a typed request (no entry failed its checks)."""
        fifo = name.endswith(".fifo")
        entries = p.Entries
        results = await self.broker.send_batch(
            name, [self._hot_entry(e, sender, fifo) for e in entries]
        )
        ok: list[SendMessageBatchResultEntry] = []
        failed: list[BatchResultErrorEntry] = []
        for e, r in zip(entries, results, strict=True):
            if isinstance(r, SendResult):
                ok.append(
                    SendMessageBatchResultEntry(
                        e.Id,
                        r.message_id,
                        sqs.md5_of_body(e.MessageBody),
                        None,
                        None,
                        r.sequence_number,
                    )
                )
            else:
                failed.append(batch_error_result(e.Id, r))
        return SendMessageBatchResult(ok, failed)

    async def _send_message_batch(self, ctx: _Ctx) -> Result:
        req = ctx.req
        name = self._queue(ctx)
        failed = [sqs.batch_error_entry(i, e, req.protocol) for i, e in req.entry_errors.items()]
        todo = [e for e in req.params["Entries"] if e["Id"] not in req.entry_errors]
        ok: list[dict[str, Any]] = []
        if todo:
            sender, fifo = self._sender(ctx), name.endswith(".fifo")
            results = await self.broker.send_batch(
                name, [self._entry(e, sender, fifo) for e in todo]
            )
            for e, r in zip(todo, results, strict=True):
                if isinstance(r, SendResult):
                    ok.append(
                        sqs.send_batch_entry(
                            e["Id"],
                            r.message_id,
                            e["MessageBody"],
                            e.get("MessageAttributes"),
                            e.get("MessageSystemAttributes"),
                            r.sequence_number,
                        )
                    )
                else:
                    failed.append(sqs.batch_error_entry(e["Id"], r, req.protocol))
        return {"Successful": ok, "Failed": failed}

    async def _receive_message(self, ctx: _Ctx) -> Result:
        p = ctx.req.params
        name = self._queue(ctx)
        # A FIFO retry (the same ReceiveRequestAttemptId within 5 minutes) is answered by
        # the partition state from its log (conveyor.partition.state: receive attempts),
        # so it survives restarts. Standard queues ignore the attempt id, as AWS does.
        msgs = await self.broker.receive(
            name,
            p.get("MaxNumberOfMessages", 1),
            visibility_timeout_s=p.get("VisibilityTimeout"),
            wait_s=p.get("WaitTimeSeconds"),
            attempt_id=p.get("ReceiveRequestAttemptId") if name.endswith(".fifo") else None,
        )
        if not msgs:
            return ReceiveMessageResult([])
        requested_system = [*p.get("AttributeNames", ()), *p.get("MessageSystemAttributeNames", ())]
        return self._received(msgs, ctx.region, requested_system, p.get("MessageAttributeNames"))

    async def _hot_receive_message(
        self, p: hot.ReceiveMessageIn, name: str, sender: str, region: str
    ) -> TypedResult:
        """:meth:`_receive_message` of a typed request."""
        max_messages = p.MaxNumberOfMessages
        msgs = await self.broker.receive(
            name,
            1 if max_messages is None else max_messages,
            visibility_timeout_s=p.VisibilityTimeout,
            wait_s=p.WaitTimeSeconds,
            attempt_id=p.ReceiveRequestAttemptId if name.endswith(".fifo") else None,
        )
        if not msgs:
            return ReceiveMessageResult([])
        requested_system = [*(p.AttributeNames or ()), *(p.MessageSystemAttributeNames or ())]
        return self._received(msgs, region, requested_system, p.MessageAttributeNames)

    def _received(
        self,
        msgs: list[Message],
        region: str,
        requested_system: list[str],
        requested_attributes: list[str] | None,
    ) -> ReceiveMessageResult:
        out: list[ReceivedMessage] = []
        for m in msgs:
            raw = m.body
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                body = raw.decode("utf-8", "replace")
                digest = None  # of the text as sent, replacement characters and all
            else:
                digest = md5_hex(raw)  # the bytes body.encode("utf-8") would give
            if requested_system or m.attributes:
                out.append(
                    self._message(m, body, digest, region, requested_system, requested_attributes)
                )
            else:  # what received_message returns for a message with nothing to select
                out.append(
                    ReceivedMessage(
                        m.message_id,
                        m.receipt_handle,
                        sqs.md5_of_body(body) if digest is None else digest,
                        body,
                    )
                )
        return ReceiveMessageResult(out)

    def _message(
        self,
        m: Message,
        body: str,
        body_md5: str | None,
        region: str,
        requested_system: list[str],
        requested_attributes: list[str] | None,
    ) -> ReceivedMessage:
        system: dict[str, str] | None = None
        if requested_system:
            system = {
                "SentTimestamp": str(m.sent_ms),
                "ApproximateReceiveCount": str(m.receive_count),
                "ApproximateFirstReceiveTimestamp": str(m.first_receive_ms),
            }
            extra = m.system
            sender = extra.get("SenderId")
            system["SenderId"] = sender if sender is not None else self.settings.account_id
            if "AWSTraceHeader" in extra:
                system["AWSTraceHeader"] = extra["AWSTraceHeader"]
            source = extra.get(_DLQ_SOURCE)
            if source is not None:
                system["DeadLetterQueueSourceArn"] = sqs.queue_arn(
                    region, *self.accounts.split(source)
                )
            if m.sequence_number is not None:
                system["SequenceNumber"] = m.sequence_number
            if m.group_id is not None:
                system["MessageGroupId"] = m.group_id
            if m.dedup_id is not None:
                system["MessageDeduplicationId"] = m.dedup_id
        attributes: dict[str, dict[str, Any]] | None = None
        if m.attributes:
            attributes = {}
            for key, a in m.attributes.items():
                if a.binary_value is not None:
                    attributes[key] = {"DataType": a.data_type, "BinaryValue": a.binary_value}
                elif a.string_value is not None:
                    attributes[key] = {"DataType": a.data_type, "StringValue": a.string_value}
                else:  # not from SQS (which needs a value); rendered without one
                    attributes[key] = {"DataType": a.data_type}
        return received_message(
            message_id=m.message_id,
            receipt_handle=m.receipt_handle,
            body=body,
            system_attributes=system,
            message_attributes=attributes,
            requested_system=requested_system,
            requested_attributes=requested_attributes,
            body_md5=body_md5,
        )

    async def _delete_message(self, ctx: _Ctx) -> Result:
        await self.broker.delete(self._queue(ctx), ctx.req.params["ReceiptHandle"])
        return None

    async def _hot_delete_message(
        self, p: hot.DeleteMessageIn, name: str, sender: str, region: str
    ) -> None:
        await self.broker.delete(name, p.ReceiptHandle)

    async def _hot_delete_message_batch(
        self, p: hot.DeleteMessageBatchIn, name: str, sender: str, region: str
    ) -> TypedResult:
        """:meth:`_delete_message_batch` of a typed request."""
        entries = p.Entries
        results = await self.broker.delete_batch(name, [e.ReceiptHandle for e in entries])
        ok: list[BatchResultIdEntry] = []
        failed: list[BatchResultErrorEntry] = []
        for e, r in zip(entries, results, strict=True):
            if r is None:
                ok.append(BatchResultIdEntry(e.Id))
            else:
                failed.append(batch_error_result(e.Id, r))
        return DeleteMessageBatchResult(ok, failed)

    async def _delete_message_batch(self, ctx: _Ctx) -> Result:
        req = ctx.req
        name = self._queue(ctx)
        entries = req.params["Entries"]
        results = await self.broker.delete_batch(name, [e["ReceiptHandle"] for e in entries])
        ok: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for e, r in zip(entries, results, strict=True):
            if r is None:
                ok.append({"Id": e["Id"]})
            else:
                failed.append(sqs.batch_error_entry(e["Id"], r, req.protocol))
        return {"Successful": ok, "Failed": failed}

    async def _change_message_visibility(self, ctx: _Ctx) -> Result:
        p = ctx.req.params
        await self.broker.change_visibility(
            self._queue(ctx), p["ReceiptHandle"], p["VisibilityTimeout"]
        )
        return None

    async def _change_message_visibility_batch(self, ctx: _Ctx) -> Result:
        req = ctx.req
        name = self._queue(ctx)
        failed = [sqs.batch_error_entry(i, e, req.protocol) for i, e in req.entry_errors.items()]
        todo = [e for e in req.params["Entries"] if e["Id"] not in req.entry_errors]
        ok: list[dict[str, Any]] = []
        if todo:
            results = await self.broker.change_visibility_batch(
                name, [(e["ReceiptHandle"], e.get("VisibilityTimeout", 0)) for e in todo]
            )
            for e, r in zip(todo, results, strict=True):
                if r is None:
                    ok.append({"Id": e["Id"]})
                else:
                    failed.append(sqs.batch_error_entry(e["Id"], r, req.protocol))
        return {"Successful": ok, "Failed": failed}

    # ------------------------------------------------------------------ dead letters
    async def _sources_of(self, dlq: str) -> list[str]:
        """Broker names of the queues whose redrive policy targets ``dlq``, sorted."""
        out = []
        for name in await self.broker.list_queues(""):
            try:
                info = await self.broker.get_queue(name)
            except errors.QueueDoesNotExist:
                continue
            if info.config.redrive is not None and info.config.redrive.dead_letter_queue == dlq:
                out.append(name)
        return out

    async def _list_dead_letter_source_queues(self, ctx: _Ctx) -> Result:
        name = self._queue(ctx)
        await self.broker.get_queue(name)  # QueueDoesNotExist if it does not
        sources = await self._sources_of(name)
        urls, token = self._page(
            sources, ctx.req.params, lambda n: ctx.url(*self.accounts.split(n))
        )
        out: dict[str, Any] = {"queueUrls": urls}
        if token is not None:
            out["NextToken"] = token
        return out

    async def _start_message_move_task(self, ctx: _Ctx) -> Result:
        p = ctx.req.params
        source, _, _ = self._arn_queue(p["SourceArn"], "SourceArn")
        destination: str | None = None
        if p.get("DestinationArn") is not None:
            destination, _, _ = self._arn_queue(p["DestinationArn"], "DestinationArn")
        try:
            info = await self.broker.get_queue(source)
            if destination is not None:
                await self.broker.get_queue(destination)
        except errors.QueueDoesNotExist:
            raise SqsError(
                "ResourceNotFoundException", "The resource that you specified does not exist."
            ) from None
        if not await self._sources_of(source):
            raise SqsError(
                "InvalidParameterValue",
                "Source queue must be configured as a Dead Letter Queue.",
            )
        task = self.moves.start(
            source=source,
            destination=destination,
            source_arn=p["SourceArn"],
            destination_arn=p.get("DestinationArn"),
            rate_per_s=p.get("MaxNumberOfMessagesPerSecond"),
            to_move=info.stats.visible if info.stats is not None else 0,
        )
        return {"TaskHandle": task.handle}

    async def _list_message_move_tasks(self, ctx: _Ctx) -> Result:
        p = ctx.req.params
        source, _, _ = self._arn_queue(p["SourceArn"], "SourceArn")
        try:
            await self.broker.get_queue(source)
        except errors.QueueDoesNotExist:
            raise SqsError(
                "ResourceNotFoundException", "The resource that you specified does not exist."
            ) from None
        tasks = self.moves.list(source, p.get("MaxResults", move_tasks_listed_default))
        return {"Results": [t.result() for t in tasks]}

    async def _cancel_message_move_task(self, ctx: _Ctx) -> Result:
        task = self.moves.cancel(ctx.req.params["TaskHandle"])
        return {"ApproximateNumberOfMessagesMoved": task.moved}


def _encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(_token_encoder.encode({"after": last})).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        return _token_decoder.decode(base64.urlsafe_b64decode(token.encode("ascii")))["after"]
    except (binascii.Error, ValueError, KeyError, msgspec.DecodeError):
        raise invalid_value("NextToken", token, "Invalid NextToken.") from None
