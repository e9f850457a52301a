"""The decode loop and the stream's description: what turns a stream into frames on a client."""
