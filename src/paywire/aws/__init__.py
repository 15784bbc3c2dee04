"""AWS Lambda entry points: composition roots for the serverless deployment."""
