// Identifier rules shared by every edge (HTTP, logs, the replay command).

/** A device uuid: 8-4-4-4-12 hex digits, either case (any version: the seed's example is not RFC 4122). */
export const UUID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
