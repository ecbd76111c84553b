// The lockstep wire protocol v1 (DESIGN.md section 5): subjects, JSON messages
// with runtime schemas, and the binary tensor path (frame -> chunks -> NATS).
//
// Sender:   encodeMessage(createMessage(MSG.hb, env, {...}))          -> nc.publish(subject, bytes)
//           encodeBinaryMessage(gradMeta, grad, { maxPayload })        -> publish each chunk, in order
// Receiver: parseMessage(msg.data)                                    -> typed Message or ProtocolError
//           new BinaryReceiver({ accept: [MSG.grad] }).push(msg.data, msg.subject) -> { meta, payload } | null
// Every rejection is a CodecError or ProtocolError whose `reason` is a metric label.
export * from './crc32.js';
export * from './float16.js';
export * from './finite.js';
export * from './frame.js';
export * from './chunks.js';
export * from './messages.js';
export * from './subjects.js';
export * from './binary-message.js';
