# BenchmarkOrganization's moto_server imports this (PYTHONPATH points here): it makes
# moto's DynamoDB TransactWriteItems back up only the items a transaction names, instead
# of deep-copying every table it touches once per item. With the hub's ledger at tens of
# thousands of items, moto's own backup takes seconds and gigabytes per call (its RSS
# passed 23 GB in the first make bench-org), which measures the emulator, not imdsguard.
# What a failed transaction restores is unchanged: each named item as it was before.
import copy
import types

import moto.dynamodb.models as models

_original = models.DynamoDBBackend.transact_write_items


def _key_of(backend, op_type, op):
    table = backend.tables.get(op.get("TableName"))
    if table is None:
        return None, None
    if op_type == "Put":
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return table, key
    return table, op.get("Key")


def transact_write_items(self, transact_items):
    backups = []
    for item in transact_items:
        op_type, op = next(iter(item.items()))
        table, key = _key_of(self, op_type, op)
        if table is None or key is None:
            continue
        current = self.get_item(table.name, key)
        backups.append((table.name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    # moto's own backup deep-copies whole tables: within the call a table "copies" to
    # itself (restoring it is then a no-op, and the items are restored below); everything
    # else, such as update_item's copy of an item, is copied as before.
    real_copy = models.copy

    def deepcopy(value, *args, **kwargs):
        if isinstance(value, models.Table):
            return value
        return real_copy.deepcopy(value, *args, **kwargs)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy)
    try:
        return _original(self, transact_items)
    except Exception:
        for table_name, key, attrs in reversed(backups):
            if attrs is None:
                try:
                    self.delete_item(table_name, key)
                except Exception:
                    pass
            else:
                self.put_item(table_name, attrs)
        raise
    finally:
        models.copy = real_copy


models.DynamoDBBackend.transact_write_items = transact_write_items


# moto answers a Query on a table (not an index) by sorting every item of the table and
# keeping those of the partition, which at the ledger's size takes a tenth of a second a
# call. Within a Query the table lists only the partition asked for, sorted as before.
import inspect
import threading

from moto.dynamodb.models.table import Table

_local = threading.local()
_all_items = Table.all_items
_query = Table.query
_query_signature = inspect.signature(_query)


def all_items(self):
    hint = getattr(_local, "partition", None)
    if hint is None or hint[0] is not self:
        return _all_items(self)
    partition = self.items.get(hint[1])
    if partition is None:
        return []
    items = list(partition.values()) if self.range_key_attr else [partition]
    return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)


def query(self, *args, **kwargs):
    bound = _query_signature.bind(self, *args, **kwargs)
    hash_key = bound.arguments.get("hash_key")
    if bound.arguments.get("index_name") is None and hash_key is not None:
        _local.partition = (self, hash_key)
    try:
        return _query(self, *args, **kwargs)
    finally:
        _local.partition = None


Table.all_items = all_items
Table.query = query


# moto's SendMessage reads the queue's attributes to learn ContentBasedDeduplication,
# and building them counts the visible, delayed and in-flight messages, each a scan of
# the whole queue with a clock read per message: with the hub's 10,000 verdicts queued
# that is about a tenth of a second per message sent, and make bench-org's stack dumps
# found every busy thread there. Within a send the attributes hold only that flag, as
# moto computes it; everywhere else (GetQueueAttributes) they are moto's own.
import moto.sqs.models as sqs_models

_sqs_local = threading.local()
_queue_attributes = sqs_models.Queue.attributes


def queue_attributes(self):
    if getattr(_sqs_local, "sending", False):
        if self.fifo_queue and getattr(self, "content_based_deduplication", False):
            return {"ContentBasedDeduplication": "true"}
        return {}
    return _queue_attributes.fget(self)


_send_message = sqs_models.SQSBackend.send_message


def send_message(self, *args, **kwargs):
    _sqs_local.sending = True
    try:
        return _send_message(self, *args, **kwargs)
    finally:
        _sqs_local.sending = False


sqs_models.Queue.attributes = property(queue_attributes)
sqs_models.SQSBackend.send_message = send_message


# ReceiveMessage checks each message it hands out against the queue's retention period,
# which moto reads through GetQueueAttributes: the same three scans, for every message
# received. The period is read from the queue itself; the check is moto's.
def is_message_valid_based_on_retention_period(self, queue_name, message):
    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return retain_until > sqs_models.unix_time()


sqs_models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period


# IMDSGUARD_BENCH_MOTO_STACKS=<file>: SIGUSR1 appends every thread's stack to the file,
# to see where moto spends its time in a run.
import faulthandler
import os
import signal

if os.environ.get("IMDSGUARD_BENCH_MOTO_STACKS"):
    _stacks = open(os.environ["IMDSGUARD_BENCH_MOTO_STACKS"], "a")
    faulthandler.register(signal.SIGUSR1, file=_stacks, all_threads=True)
