/**
 * Portal credentials of the test gateways running in this test file, by portal URL, so that a hand-driven portal
 * (RawPortal) or a simulated one can say hello as the portal it names without each test provisioning it. Tests of
 * the credential check itself send their own `token` (or none) and bypass this.
 */
const provisioners = new Map<string, (portalId: string) => string>();

export function registerPortalCredentials(portalUrl: string, provision: (portalId: string) => string): void {
  provisioners.set(portalUrl, provision);
}

export function forgetPortalCredentials(portalUrl: string): void {
  provisioners.delete(portalUrl);
}

/** The credential of `portalId` on the gateway at `portalUrl` (made on first use), or undefined for a gateway not started by the helper. */
export function credentialFor(portalUrl: string, portalId: string): string | undefined {
  return provisioners.get(portalUrl)?.(portalId);
}
