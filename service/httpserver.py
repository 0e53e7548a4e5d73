"""CherryPy's HTTP server (cheroot), with connections that have sent nothing kept off the workers.

cheroot hands every newly accepted connection straight to a worker thread, which then blocks reading
the request line until the socket timeout: a few hundred clients that connect and stay silent hold
every worker, and nobody else is served. Kept-alive connections, on the other hand, wait in cheroot's
selector and reach a worker only once they have data. This server treats new connections the same
way; the selector closes those that stay silent past the socket timeout.
"""

from __future__ import annotations

from cheroot import connections
from cherrypy._cpwsgi_server import CPWSGIServer


class _WaitForData(connections.ConnectionManager):
    def _from_server_socket(self, server_socket):
        conn = super()._from_server_socket(server_socket)
        if conn is not None:
            self.put(conn)  # into the selector; a worker takes it once it is readable
        return None


class HTTPServer(CPWSGIServer):
    # Connections parked in the selector (new or kept alive) before cheroot stops keeping any alive.
    keep_alive_conn_limit = 500

    def prepare(self):
        super().prepare()
        # prepare() built the stock manager; nothing is registered with it yet but the listening socket.
        stock = self._connections
        self._connections = _WaitForData(self)
        stock._selector.close()
