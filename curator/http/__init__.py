"""The HTTP layer of the online service: the FastAPI app, its routers and what they share
(JSON errors, the body limit, the API key). The contract's models are curator.contracts.schemas."""
