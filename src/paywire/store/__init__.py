"""Store adapters implementing the store port (SQL via SQLAlchemy Core; DynamoDB)."""
