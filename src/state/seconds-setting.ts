// A duration the plugin's environment may set, in whole seconds: read once, refused at start when it is not one.

/**
 * The milliseconds `name` (an environment variable, its text `text`) asks for, or `defaultSeconds` when it is unset;
 * a text that is not a whole number of seconds from `min` to `max` is refused, saying what is allowed.
 */
export function secondsSetting(
  name: string,
  text: string | undefined,
  { defaultSeconds, min = 1, max = 86_400 }: { defaultSeconds: number; min?: number; max?: number },
): number {
  if (text === undefined || text === '') return defaultSeconds * 1000;
  const seconds = /^[0-9]{1,9}$/.test(text) ? Number(text) : NaN;
  if (!(seconds >= min && seconds <= max))
    throw new Error(
      `${name}=${text} is not a whole number of seconds from ${min} to ${max}; leave it unset for the default, ${defaultSeconds}`,
    );
  return seconds * 1000;
}

/**
 * How long Docker has for the step that follows an answer (TSMACVLAN_ENDPOINT_GRACE_S): the endpoint after an address
 * (ipam/forgotten-takes.ts), the Join after an endpoint, the move of the link after a Join
 * (driver/forgotten-endpoints.ts).
 */
export function endpointGraceMs(env = process.env.TSMACVLAN_ENDPOINT_GRACE_S): number {
  // Docker takes each step within milliseconds of the answer before it, and retries a request to a plugin that does
  // not answer for 30 s at most; a minute is hundreds of times the first under load, and longer than the second.
  return secondsSetting('TSMACVLAN_ENDPOINT_GRACE_S', env, { defaultSeconds: 60 });
}
