"""lendgate's gRPC layer: thin servicers, the method-handler layer and the server factory.

Servicers convert protobuf <-> domain and delegate to the domain services in
``lendgate.*``; nothing here holds business logic.
"""
