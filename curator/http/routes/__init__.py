"""The HTTP routes, one router per concern; curator.http.app includes them in this order."""
