"""pb.py — a minimal protobuf (proto3) encoder/decoder for exactly the messages of
proto/stream.proto, so integration tests can speak the stream without pip packages.

Messages are plain dicts keyed by field name. encode(name, d) writes the fields present
in d (scalars equal to their default are skipped, as proto3 does; a oneof member is
written whenever it is present); decode(name, data) returns a dict with every field
present on the wire (repeated fields as lists, nested messages as dicts). Unknown
fields are skipped. Varint, 64-bit, length-delimited and 32-bit wire types; packed and
unpacked repeated scalars are both accepted.
"""

# field number -> (name, type, repeated, oneof); type is a scalar name or a message name
SCHEMA = {
    "ClientFrame": {1: ("id", "uint64", False, False), 2: ("send", "Send", False, True),
                    3: ("ack", "Ack", False, True), 4: ("ping", "Ping", False, True)},
    "Send": {1: ("client_message_id", "bytes", False, False),
             2: ("to_user", "string", False, True), 3: ("group_id", "string", False, True),
             4: ("copies", "DeviceCiphertext", True, False)},
    "DeviceCiphertext": {1: ("device_id", "string", False, False),
                         2: ("ciphertext", "bytes", False, False)},
    "Ack": {1: ("envelope_ids", "uint64", True, False)},
    "Ping": {},
    "ServerFrame": {1: ("id", "uint64", False, False),
                    2: ("send_result", "SendResult", False, True),
                    3: ("ack_result", "AckResult", False, True),
                    4: ("pong", "Pong", False, True), 5: ("error", "Error", False, True),
                    6: ("envelope", "Envelope", False, True),
                    7: ("drained", "Drained", False, True)},
    "SendResult": {1: ("status", "enum", False, False), 2: ("server_time_ms", "int64", False, False),
                   3: ("missing", "UserDevice", True, False), 4: ("extra", "UserDevice", True, False)},
    "UserDevice": {1: ("user_id", "string", False, False), 2: ("device_id", "string", False, False)},
    "AckResult": {1: ("deleted", "uint32", False, False)},
    "Pong": {1: ("server_time_ms", "int64", False, False)},
    "Error": {1: ("code", "string", False, False), 2: ("message", "string", False, False)},
    "Envelope": {1: ("envelope_id", "uint64", False, False), 2: ("kind", "enum", False, False),
                 3: ("sender_user", "string", False, False),
                 4: ("sender_username", "string", False, False),
                 5: ("sender_device", "string", False, False),
                 6: ("client_message_id", "bytes", False, False),
                 7: ("group_id", "string", False, False),
                 8: ("server_time_ms", "int64", False, False),
                 9: ("ciphertext", "bytes", False, False),
                 10: ("expired", "ExpiredNotice", False, False)},
    "ExpiredNotice": {1: ("client_message_id", "bytes", False, False),
                      2: ("recipient_user", "string", False, False),
                      3: ("devices", "uint32", False, False)},
    "Drained": {1: ("delivered", "uint32", False, False)},
}

SEND_OK, SEND_DUPLICATE, SEND_STALE_DEVICES = 0, 1, 2
KIND_MESSAGE, KIND_EXPIRED = 0, 1

VARINT_TYPES = ("uint64", "int64", "uint32", "enum", "bool")


def varint(n):
    if n < 0:
        n += 1 << 64  # int64 negatives: ten-byte two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def _scalar_default(t):
    return {"string": "", "bytes": b""}.get(t, 0)


def encode(name, d):
    out = bytearray()
    for num, (fname, t, rep, oneof) in sorted(SCHEMA[name].items()):
        if fname not in d or d[fname] is None:
            continue
        v = d[fname]
        values = v if rep else [v]
        if rep and t in VARINT_TYPES:  # packed
            if values:
                body = b"".join(varint(int(x)) for x in values)
                out += key(num, 2) + varint(len(body)) + body
            continue
        for x in values:
            if t in VARINT_TYPES:
                if x == 0 and not oneof and not rep:
                    continue
                out += key(num, 0) + varint(int(x))
            elif t in ("string", "bytes"):
                b = x.encode() if isinstance(x, str) else bytes(x)
                if not b and not oneof and not rep:
                    continue
                out += key(num, 2) + varint(len(b)) + b
            else:
                b = encode(t, x)
                out += key(num, 2) + varint(len(b)) + b
    return bytes(out)


class DecodeError(ValueError):
    pass


def read_varint(data, i):
    n = shift = 0
    while True:
        if i >= len(data):
            raise DecodeError("truncated varint")
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i
        if shift > 63:
            raise DecodeError("varint too long")


def _signed(t, n):
    if t == "int64" and n >= 1 << 63:
        return n - (1 << 64)
    return n


def decode(name, data):
    fields = SCHEMA[name]
    d = {}
    i = 0
    while i < len(data):
        k, i = read_varint(data, i)
        num, wire = k >> 3, k & 7
        spec = fields.get(num)
        if wire == 0:
            val, i = read_varint(data, i)
        elif wire == 1:
            val, i = data[i:i + 8], i + 8
        elif wire == 5:
            val, i = data[i:i + 4], i + 4
        elif wire == 2:
            ln, i = read_varint(data, i)
            if i + ln > len(data):
                raise DecodeError("truncated field")
            val, i = data[i:i + ln], i + ln
        else:
            raise DecodeError(f"wire type {wire}")
        if spec is None:
            continue
        fname, t, rep, _ = spec
        if t in VARINT_TYPES:
            if wire == 2:  # packed
                vals, j = [], 0
                while j < len(val):
                    x, j = read_varint(val, j)
                    vals.append(_signed(t, x))
            else:
                vals = [_signed(t, val)]
        elif t == "string":
            vals = [bytes(val).decode()]
        elif t == "bytes":
            vals = [bytes(val)]
        else:
            vals = [decode(t, bytes(val))]
        if rep:
            d.setdefault(fname, []).extend(vals)
        else:
            d[fname] = vals[-1]
    for num, (fname, t, rep, oneof) in fields.items():
        if rep:
            d.setdefault(fname, [])
        elif not oneof and t in VARINT_TYPES + ("string", "bytes"):
            d.setdefault(fname, _scalar_default(t))
    return d


if __name__ == "__main__":  # self-check
    f = {"id": 5, "send": {"client_message_id": b"\x01" * 16, "to_user": "a" * 32,
                           "copies": [{"device_id": "b" * 32, "ciphertext": b"xyz"}]}}
    assert decode("ClientFrame", encode("ClientFrame", f)) == f, decode("ClientFrame", encode("ClientFrame", f))
    a = {"id": 300, "ack": {"envelope_ids": [1, 2, 300, 1 << 40]}}
    assert decode("ClientFrame", encode("ClientFrame", a)) == a
    print("ok")
