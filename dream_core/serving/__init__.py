"""The dream server: sockets and sessions (``server``), request decoding and
result encoding (``codec``), the device thread (``worker``), what passes
between them (``tasks``), and the ``serve`` command (``command``)."""
