/** The child side of a bench load generator's IPC channel (the parent side is support.ts ChildChannel). */

/** Sends a message to the parent; resolves once it is handed over. */
export function sendToParent(message: { readonly type: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error('this bench worker must run with an IPC channel'));
    process.send(message, (error: Error | null) => (error ? reject(error) : resolve()));
  });
}

/** The parent's next message of `type`. */
export function nextParentMessage<T extends { type: string }>(type: T['type']): Promise<T> {
  return new Promise((resolve) => {
    const listener = (message: { type: string }) => {
      if (message.type !== type) return;
      process.off('message', listener);
      resolve(message as T);
    };
    process.on('message', listener);
  });
}
