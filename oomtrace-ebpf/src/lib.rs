#![no_std]
// Empty on purpose: lets the kernel crate be a build-dependency of oomtrace
// so that cargo rebuilds the object when it changes.
