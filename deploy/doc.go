// Package deploy holds the deployment files' checks: docker-compose.yml (with
// compose.dev.yml and .env.example), deploy/nginx.conf and deploy/nats.conf are
// loaded and validated by the tests here, and the topology they describe is run
// for real as processes by the tests in deploy/e2e.
//
// What the checks hold the deployment to:
//   - every service has a healthcheck and waits for the services it needs to be
//     healthy (depends_on: service_healthy, or service_completed_successfully for
//     the one-shot init), so no replica serves before its store and NATS do;
//   - secrets come from .env (documented in .env.example), never from the compose
//     files; published ports are bound to the loopback interface only, and
//     nothing takes the host's port 4222 (OWASP ASVS V14.1: the build and deploy
//     configuration is checked, not trusted);
//   - the WebAuthn origin authd accepts is the demo's published address (W3C
//     WebAuthn Level 3 §13.4.9: an assertion is bound to the origin the browser
//     shows);
//   - every TWOFACTOR_* variable the compose files set is a real flag of the
//     binary it is given to, read from that binary's own flag set.
package deploy
