"""`FormData`, `Blob` and `File`: form bodies as the Workers SDK hands them to Python.

`await request.form_data()` parses an `application/x-www-form-urlencoded` or
`multipart/form-data` body (the two types the Fetch API's `formData()`
takes; anything else is a TypeError, as there). Text fields are `str`, file
fields are `File` objects (a `Blob` with a `name`). A `FormData` maps a name
to its first value (`form["name"]`, `get`), lists all with `get_all` (JS:
`getAll`), and can be built by hand and passed as a `Response`/`fetch` body.
"""

from __future__ import annotations

import email.parser
import email.policy
import time
import uuid
from collections.abc import Iterable, Iterator
from urllib.parse import parse_qsl

__all__ = ["Blob", "File", "FormData", "parse_form"]


class Blob:
    """Immutable bytes with a content type: `size`, `type`, `await text()`, `await bytes()`."""

    def __init__(self, parts: Iterable[bytes | str | Blob] = (), content_type: str = "") -> None:
        chunks = []
        for part in parts:
            if isinstance(part, Blob):
                chunks.append(part._data)
            elif isinstance(part, str):
                chunks.append(part.encode("utf-8"))
            else:
                chunks.append(bytes(part))
        self._data = b"".join(chunks)
        self.content_type = content_type.lower()

    @property
    def type(self) -> str:  # the JS name
        return self.content_type

    @property
    def size(self) -> int:
        return len(self._data)

    async def bytes(self) -> bytes:
        return self._data

    async def text(self) -> str:
        return self._data.decode("utf-8", "replace")

    async def arrayBuffer(self) -> bytes:  # the JS name
        return self._data

    def slice(self, start: int = 0, end: int | None = None, content_type: str = "") -> Blob:
        return Blob([self._data[start:end]], content_type)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, type={self.content_type!r})"


class File(Blob):
    """An uploaded file: a Blob with its `name` and `last_modified` (ms since the epoch)."""

    def __init__(
        self,
        parts: Iterable[bytes | str | Blob],
        filename: str,
        content_type: str = "",
        last_modified: int | None = None,
    ) -> None:
        super().__init__(parts, content_type)
        self.name = filename
        self.last_modified = last_modified if last_modified is not None else time.time_ns() // 10**6

    @property
    def lastModified(self) -> int:  # the JS name
        return self.last_modified


Value = str | Blob


class FormData:
    """Ordered, multi-valued form fields."""

    def __init__(self, fields: dict[str, Value] | Iterable[tuple[str, Value]] | None = None):
        self._items: list[tuple[str, Value]] = []
        for name, value in fields.items() if isinstance(fields, dict) else fields or ():
            self.append(name, value)

    def append(self, name: str, value: Value, filename: str | None = None) -> None:
        if isinstance(value, Blob) and filename is not None:
            value = File([value], filename, value.content_type)
        elif not isinstance(value, Blob):
            value = str(value)
        self._items.append((name, value))

    def set(self, name: str, value: Value, filename: str | None = None) -> None:
        self.delete(name)
        self.append(name, value, filename)

    def delete(self, name: str) -> None:
        self._items = [(n, v) for n, v in self._items if n != name]

    def get(self, name: str, default: Value | None = None) -> Value | None:
        for item_name, value in self._items:
            if item_name == name:
                return value
        return default

    def get_all(self, name: str) -> list[Value]:
        return [value for item_name, value in self._items if item_name == name]

    getAll = get_all  # the JS name

    def has(self, name: str) -> bool:
        return any(item_name == name for item_name, _ in self._items)

    def __getitem__(self, name: str) -> Value:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def keys(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self._items))

    def values(self) -> list[Value]:
        return [value for _, value in self._items]

    def items(self) -> list[tuple[str, Value]]:
        return list(self._items)

    def encode(self) -> tuple[bytes, str]:
        """The body and Content-Type to send this form as (multipart/form-data)."""
        boundary = f"----flexilib{uuid.uuid4().hex}"
        out = []
        for name, value in self._items:
            out.append(f"--{boundary}\r\n".encode())
            if isinstance(value, Blob):
                filename = value.name if isinstance(value, File) else "blob"
                kind = value.content_type or "application/octet-stream"
                out.append(
                    f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                    f"Content-Type: {kind}\r\n\r\n".encode()
                )
                out.append(value._data)
            else:
                out.append(f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
                out.append(value.encode("utf-8"))
            out.append(b"\r\n")
        out.append(f"--{boundary}--\r\n".encode())
        return b"".join(out), f"multipart/form-data; boundary={boundary}"

    def __repr__(self) -> str:
        return f"FormData({self._items!r})"


def parse_form(body: bytes, content_type: str | None) -> FormData:
    """A form body as FormData; TypeError for another content type, as `formData()` raises."""
    media = (content_type or "").partition(";")[0].strip().lower()
    form = FormData()
    if media == "application/x-www-form-urlencoded":
        for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            form.append(name, value)
        return form
    if media != "multipart/form-data":
        raise TypeError(f"Unrecognized Content-Type header value {content_type!r}")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise TypeError("Failed to parse body as FormData: no multipart boundary")
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            form.append(name, File([data], filename, part.get_content_type()))
        else:
            charset = part.get_content_charset() or "utf-8"
            form.append(name, data.decode(charset, "replace"))
    return form
