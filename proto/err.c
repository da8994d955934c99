/* err: descriptions for the proto library's error codes. */
#include "proto/err.h"

const char *proto_strerror(enum proto_err rc)
{
	switch (rc) {
	case PROTO_OK: return "no error";
	case PROTO_E_NOMEM: return "out of memory";
	case PROTO_E_EMPTY: return "value is empty";
	case PROTO_E_TOO_LONG: return "value is too long";
	case PROTO_E_BAD_CHAR: return "character not allowed here";
	case PROTO_E_NOT_NUMBER: return "not a decimal number";
	case PROTO_E_LEADING_ZERO: return "number has a leading zero";
	case PROTO_E_RANGE: return "number out of range";
	case PROTO_E_BUFFER: return "output buffer too small";
	case PROTO_E_RANDOM: return "random generator failed";
	case PROTO_E_CRYPTO: return "cryptographic primitive failed";
	case PROTO_E_HEADER_NAME: return "header name is not a token";
	case PROTO_E_HEADER_VALUE: return "header value holds forbidden characters";
	case PROTO_E_FRAMING_CL_TE: return "Content-Length together with Transfer-Encoding";
	case PROTO_E_FRAMING_TE: return "Transfer-Encoding other than chunked";
	case PROTO_E_FRAMING_DUP_CL: return "Content-Length repeated";
	case PROTO_E_FRAMING_DUP_TE: return "Transfer-Encoding repeated";
	case PROTO_E_FRAMING_CL: return "malformed Content-Length";
	case PROTO_E_FRAMING_TE_HTTP10: return "Transfer-Encoding on HTTP/1.0";
	case PROTO_E_FRAMING_HOST: return "Host missing, repeated or malformed";
	case PROTO_E_HEADER_COUNT: return "too many header fields";
	case PROTO_E_HEADER_REPEATED: return "protocol header field repeated";
	case PROTO_E_TUS_VERSION: return "unsupported Tus-Resumable version";
	case PROTO_E_TUS_CONTENT_TYPE: return "body type is not application/offset+octet-stream";
	case PROTO_E_HTTP_DATE: return "malformed HTTP date";
	case PROTO_E_BASE64: return "invalid base64";
	case PROTO_E_BASE64_PADDING: return "invalid base64 padding";
	case PROTO_E_BASE64_NONCANON: return "non-canonical base64";
	case PROTO_E_META_PAIR: return "malformed Upload-Metadata pair";
	case PROTO_E_META_KEY: return "invalid Upload-Metadata key";
	case PROTO_E_META_DUP_KEY: return "Upload-Metadata key repeated";
	case PROTO_E_META_TOO_MANY: return "too many Upload-Metadata pairs";
	case PROTO_E_META_JOB_ID: return "Upload-Metadata lacks job-id";
	case PROTO_E_META_TEXT: return "metadata text is not clean UTF-8";
	case PROTO_E_META_COPIES: return "copies out of range";
	case PROTO_E_META_FORMAT: return "unsupported document format";
	case PROTO_E_META_TIME: return "submitted-at is not an RFC 3339 UTC time";
	case PROTO_E_META_ENCODING: return "unsupported content encoding";
	case PROTO_E_META_JOB_ID_MISMATCH: return "job-id differs from the job id in the path";
	case PROTO_E_CHECKSUM_SYNTAX: return "malformed Upload-Checksum";
	case PROTO_E_CHECKSUM_ALGORITHM: return "unsupported checksum algorithm";
	case PROTO_E_DIGEST_SYNTAX: return "malformed Repr-Digest";
	case PROTO_E_DIGEST_DUP: return "Repr-Digest algorithm repeated";
	case PROTO_E_DIGEST_NO_SHA256: return "Repr-Digest lacks sha-256";
	case PROTO_E_HASH_LENGTH: return "hash has the wrong length";
	case PROTO_E_UUID: return "client job id is not a UUID";
	case PROTO_E_JOB_ID: return "malformed job id";
	case PROTO_E_SERVER_ID: return "malformed server id";
	case PROTO_E_ROUTE_SYNTAX: return "malformed public job id";
	case PROTO_E_ROUTE_TAG: return "public job id does not verify";
	case PROTO_E_OWNER: return "malformed owner identity";
	case PROTO_E_ROUTE_KEY: return "route key too short";
	case PROTO_E_ADDRESS: return "not a canonical IP address";
	case PROTO_E_JSON: return "not a JSON text";
	case PROTO_E_PROBLEM_SHAPE: return "problem body has the wrong shape";
	case PROTO_E_PROBLEM_STATUS: return "problem status missing or not 4xx/5xx";
	case PROTO_E_ANNOUNCE_MISSING: return "server announcement lacks a field";
	case PROTO_E_ANNOUNCE_URL: return "server announcement has an invalid url";
	case PROTO_E_ANNOUNCE_VALUE: return "server announcement has an invalid value";
	case PROTO_E_ANNOUNCE_DUP: return "server announcement repeats a field";
	case PROTO_E_META_SIZE: return "size missing, malformed, or given without encoding zstd";
	}
	return "unknown error";
}
