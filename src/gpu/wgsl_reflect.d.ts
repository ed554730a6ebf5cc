// The package's types live at its root entry; the ESM file we import (the bare name resolves to
// an empty module in Node) has none of its own.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
