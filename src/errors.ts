/** An error whose message is for the person who typed the docker command: what was asked, what is wrong, what is allowed. */
export class PluginError extends Error {}
