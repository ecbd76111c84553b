// The coordinator checkpoints through the shared module, which the in-process trainer uses too.
export * from '../shared/checkpoint/training.js';
